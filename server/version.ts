// Signet's version, from package.json, seen from the sources (server/) or the build (dist/server/).
import { readFileSync } from 'node:fs';

let version: string | undefined;

export function signetVersion(): string {
  if (version !== undefined) return version;
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(rel, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'signet' && pkg.version) return (version = pkg.version);
    } catch {
      // not there: the other layout
    }
  }
  return (version = 'unknown');
}
