// Users for auth tests: an htpasswd file written as `htpasswd -B` does (bcrypt, $2y$), Basic
// authorization headers, and projects with members set up through the management API.
import { rename, stat, utimes, writeFile } from 'node:fs/promises';
import bcrypt from 'bcryptjs';

export function basic(user: string, password: string): string {
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/** Writes `user:hash` lines; cost 4 keeps tests fast (the format is what matters). */
export async function writeHtpasswd(file: string, users: Record<string, string>): Promise<void> {
  const lines = Object.entries(users).map(([user, password], i) => {
    const hash = bcrypt.hashSync(password, 4);
    // Exercise every prefix htpasswd implementations write.
    const prefix = ['$2y$', '$2a$', '$2b$'][i % 3]!;
    return `${user}:${hash.replace(/^\$2[aby]\$/, prefix)}`;
  });
  await writeFile(file, `# test users\n${lines.join('\n')}\n`);
}

/**
 * Replaces the htpasswd file of a running registry as an admin's edit would: written beside and
 * renamed over (a reader never sees half a file), its modification time later than before.
 */
export async function replaceHtpasswd(file: string, users: Record<string, string>): Promise<void> {
  const before = await stat(file);
  const next = `${file}.next`;
  await writeHtpasswd(next, users);
  const mtime = new Date(Math.max(Date.now(), before.mtimeMs + 1000));
  await utimes(next, mtime, mtime);
  await rename(next, file);
}

export type ProjectRole = 'guest' | 'developer' | 'maintainer' | 'admin';

/** Creates a project as a registry admin (`admin` is `[user, password]`) and sets member roles. */
export async function createProject(
  registryUrl: string,
  admin: [string, string],
  name: string,
  options: { public: boolean; members: Record<string, ProjectRole> },
): Promise<void> {
  const headers = { Authorization: basic(...admin), 'Content-Type': 'application/json' };
  const created = await fetch(`${registryUrl}/api/v1/projects`, {
    method: 'POST',
    headers,
    body: JSON.stringify({ name, public: options.public }),
  });
  if (created.status !== 201) throw new Error(`creating project ${name}: ${created.status} ${await created.text()}`);
  for (const [user, role] of Object.entries(options.members)) {
    const res = await fetch(`${registryUrl}/api/v1/projects/${name}/members/${user}`, {
      method: 'PUT',
      headers,
      body: JSON.stringify({ role }),
    });
    if (res.status !== 200 && res.status !== 201) throw new Error(`${user} as ${role} in ${name}: ${res.status} ${await res.text()}`);
  }
}

/** What the token service answers (distribution's token spec, with OAuth2's field names). */
export interface TokenAnswer {
  token: string;
  access_token: string;
  expires_in: number;
  issued_at: string;
  refresh_token?: string;
  scope?: string;
}
