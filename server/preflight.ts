// The files the configuration names, read once before anything starts, so that a missing or
// unreadable one refuses the start with its setting's name instead of failing the first login or
// TLS handshake. (The Go registry creates a missing htpasswd file with a user `docker` and prints
// its generated password in the log; Signet refuses instead: a missing file is most often a wrong
// path or a volume not mounted, and a password in the log is a secret in the log.)
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { createSecureContext } from 'node:tls';
import { parseHtpasswd } from '../auth/htpasswd.js';
import { ROBOT_PREFIX } from '../auth/robots.js';
import { checkWritableRoot } from '../storage/filesystem-blob-store.js';
import type { Config } from './config.js';
import type { ConfigNote } from './config-sources.js';
import { reasonOf } from './failures.js';

export interface Preflight {
  problems: string[];
  notes: ConfigNote[];
}

async function read(variable: string, file: string, problems: string[], advice = ''): Promise<Buffer | undefined> {
  try {
    return await readFile(file);
  } catch (err) {
    problems.push(`${variable}: cannot read ${file}: ${reasonOf(err)}${advice}`);
    return undefined;
  }
}

async function checkHtpasswd(file: string, result: Preflight): Promise<void> {
  const text = await read('REGISTRY_AUTH_HTPASSWD_PATH', file, result.problems, `; create it with: htpasswd -Bc ${file} <user>`);
  if (text === undefined) return;
  const users = parseHtpasswd(text.toString('utf8'));
  // Entries in other formats (htpasswd without -B writes MD5) are refused at login, as the Go
  // registry refuses them: said here, by user name, so the cause of a failing login is known.
  const skipped = text
    .toString('utf8')
    .split(/\r?\n/)
    .map((line) => line.trim())
    .filter((line) => line && !line.startsWith('#'))
    .map((line) => line.slice(0, Math.max(0, line.indexOf(':'))))
    .filter((user) => user !== '' && !users.has(user));
  if (skipped.length > 0) {
    result.notes.push({
      level: 'warn',
      msg: 'htpasswd entries that are not bcrypt are ignored (write them with htpasswd -B)',
      fields: { path: file, users: skipped },
    });
  }
  const robotNamed = [...users.keys()].filter((user) => user.startsWith(ROBOT_PREFIX));
  if (robotNamed.length > 0) {
    result.notes.push({
      level: 'warn',
      msg: 'htpasswd entries named robot$... never log in: the prefix is reserved for robot accounts',
      fields: { path: file, users: robotNamed },
    });
  }
  if (users.size === 0)
    result.notes.push({ level: 'warn', msg: 'the htpasswd file has no bcrypt entry: nobody can log in', fields: { path: file } });
}

async function checkTls(tls: { certificate: string; key: string }, problems: string[]): Promise<void> {
  const cert = await read('REGISTRY_HTTP_TLS_CERTIFICATE', tls.certificate, problems);
  const key = await read('REGISTRY_HTTP_TLS_KEY', tls.key, problems);
  if (cert === undefined || key === undefined) return;
  try {
    createSecureContext({ cert, key });
  } catch (err) {
    problems.push(
      `REGISTRY_HTTP_TLS_CERTIFICATE, REGISTRY_HTTP_TLS_KEY: ${tls.certificate} and ${tls.key} are not a PEM certificate and its private key: ${reasonOf(err)}`,
    );
  }
}

async function checkStorageRoot(root: string, problems: string[]): Promise<void> {
  try {
    await checkWritableRoot(root);
  } catch (err) {
    problems.push(`REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: cannot write to ${path.resolve(root)}: ${reasonOf(err)}`);
  }
}

export async function preflight(config: Config): Promise<Preflight> {
  const result: Preflight = { problems: [], notes: [] };
  if (config.auth.htpasswd) await checkHtpasswd(config.auth.htpasswd.path, result);
  if (config.http.tls) await checkTls(config.http.tls, result.problems);
  // In read-only mode nothing is written: a read-only volume is what that mode is for.
  if (!config.storage.s3 && !config.storage.maintenance.readonly.enabled) {
    await checkStorageRoot(config.storage.filesystem.rootdirectory, result.problems);
  }
  const consoleDir = config.console.directory;
  if (config.console.enabled && consoleDir) {
    await read(
      'REGISTRY_CONSOLE_DIRECTORY',
      path.join(consoleDir, 'index.html'),
      result.problems,
      '; point it at a console build (npm run build writes dist/console)',
    );
  }
  return result;
}
