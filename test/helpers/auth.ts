// Users for auth tests: an htpasswd file written as `htpasswd -B` does (bcrypt, $2y$), and
// Basic authorization headers.
import { writeFile } from 'node:fs/promises';
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
