// Signet's version, from package.json.
import { readFileSync } from 'node:fs';
import { packageJson } from '../storage/own-files.js';

let version: string | undefined;

export function signetVersion(): string {
  if (version !== undefined) return version;
  try {
    const pkg = JSON.parse(readFileSync(packageJson, 'utf8')) as { name?: string; version?: string };
    if (pkg.name === 'signet' && pkg.version) return (version = pkg.version);
  } catch {
    // a build copied without its package.json
  }
  return (version = 'unknown');
}
