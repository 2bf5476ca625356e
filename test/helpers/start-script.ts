// What `npm start` runs: read from package.json, so the bench and the tests that start node "with
// the start flags" follow it when it changes.
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The node flags and environment defaults of package.json's `start` script: `NAME=\${NAME:-value}`
 * words before `exec node` give `value` unless the caller's own environment sets NAME.
 */
export function startScript(): { flags: string[]; env: Record<string, string> } {
  const pkg = JSON.parse(readFileSync(fileURLToPath(new URL('../../package.json', import.meta.url)), 'utf8')) as {
    scripts: { start: string };
  };
  const words = pkg.scripts.start.split(/\s+/);
  const env: Record<string, string> = {};
  for (let match; (match = /^([A-Z_]+)=\$\{\1:-([^}]*)\}$/.exec(words[0] ?? '')); words.shift()) {
    env[match[1]!] = process.env[match[1]!] ?? match[2]!;
  }
  // `exec node ...`: the shell npm runs the script in becomes node (see README, "Running it").
  if (words[0] === 'exec') words.shift();
  const main = words.indexOf('dist/server/main.js');
  if (words[0] !== 'node' || main < 0) throw new Error(`cannot read node flags from the start script: ${pkg.scripts.start}`);
  return { flags: words.slice(1, main), env };
}
