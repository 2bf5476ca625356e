// A tag-list walk client in a process of its own (bench/scale-rows.ts), as skopeo or crane is one:
//   node --import tsx bench/walk-client.ts <base url> <repository> <page size> <expected tags> <uncounted> <counted>
// Walks the repository's whole tag list `uncounted` + `counted` times, each following the Link
// header page by page on one keep-alive connection (undici's request), and prints the counted
// walks' milliseconds as a JSON array. In the bench process, whose heap holds what it generated
// to fill the registries, the client's own garbage collection showed in the figures: a bare
// server's 500 pages took 110-121 ms there.
import { Agent, request, type Dispatcher } from 'undici';

const [baseUrl, repository, pageArg, expectedArg, uncountedArg, countedArg] = process.argv.slice(2);
if (!baseUrl || !repository || !countedArg)
  throw new Error('usage: walk-client.ts <base url> <repository> <page> <tags> <uncounted> <counted>');
const [page, expected, uncounted, counted] = [pageArg, expectedArg, uncountedArg, countedArg].map(Number) as [
  number,
  number,
  number,
  number,
];

async function walk(): Promise<number> {
  const dispatcher = new Agent({ connections: 1 });
  try {
    const started = performance.now();
    let next: string | undefined = `/v2/${repository}/tags/list?n=${page}`;
    let seen = 0;
    while (next) {
      const res: Dispatcher.ResponseData = await request(new URL(next, baseUrl), { dispatcher });
      const body = (await res.body.json()) as { tags?: string[] };
      if (res.statusCode !== 200) throw new Error(`tags/list page: ${res.statusCode}`);
      seen += body.tags?.length ?? 0;
      const link: string | string[] | undefined = res.headers.link;
      next = /<([^>]+)>;\s*rel="next"/.exec(typeof link === 'string' ? link : '')?.[1];
    }
    const ms = performance.now() - started;
    if (seen !== expected) throw new Error(`the walk saw ${seen} tags, expected ${expected}`);
    return ms;
  } finally {
    await dispatcher.close();
  }
}

for (let i = 0; i < uncounted; i++) await walk();
const walks: number[] = [];
for (let i = 0; i < counted; i++) walks.push(await walk());
process.stdout.write(`${JSON.stringify(walks)}\n`);
