// The folder graph of the application code: no import cycle between files, and folders depend one
// way only, server → sigstore → auth → storage (a folder may import any folder to its right).
// Run by .ci/run (`npm run check:layers`); exits 1 naming each offending import.
import madge from 'madge';

const LAYERS = ['server', 'mirror', 'sigstore', 'auth', 'storage'];

const graph = await madge(
  LAYERS.map((folder) => `${folder}/`),
  {
    fileExtensions: ['ts'],
    tsConfig: 'tsconfig.json',
    detectiveOptions: { ts: { skipTypeImports: false } },
  },
);

const problems = [];
for (const cycle of graph.circular()) problems.push(`import cycle: ${[...cycle, cycle[0]].join(' → ')}`);

const layerOf = (file) => LAYERS.indexOf(file.split('/')[0]);
for (const [file, imports] of Object.entries(graph.obj())) {
  const from = layerOf(file);
  for (const target of imports) {
    const to = layerOf(target);
    if (from >= 0 && to >= 0 && to < from) problems.push(`${file} imports ${target}: ${LAYERS[from]}/ may not depend on ${LAYERS[to]}/`);
  }
}

const files = Object.keys(graph.obj()).length;
if (problems.length > 0) {
  console.error(`${problems.length} layering problem(s) in ${files} files:\n${problems.map((p) => `  ${p}`).join('\n')}`);
  process.exit(1);
}
console.log(`${files} files: no import cycle; folders depend one way (${LAYERS.join(' → ')})`);
