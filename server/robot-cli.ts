// `signet robot create|list|revoke`: robot accounts through the management API.
import type { Command } from 'commander';
import { ApiCallError, type Call } from './api-client.js';

type Out = (line: string) => void;

interface RobotJson {
  name: string;
  role: string;
  expiresAt: string | null;
  createdAt: string;
  lastUsedAt: string | null;
  secret?: string;
}

/** `90d` → 90, `never` → null; anything else is refused with the forms that work. */
export function parseExpiry(untrusted: string): number | null {
  if (untrusted === 'never') return null;
  const match = /^(\d{1,4})d$/.exec(untrusted);
  const days = match ? Number(match[1]) : NaN;
  if (!(days >= 1 && days <= 3650))
    throw new ApiCallError(0, `--expires ${untrusted}: expected a number of days such as 90d (1d to 3650d), or never`);
  return days;
}

export function registerRobotCommands(program: Command, client: () => Call, out: Out): void {
  const enc = encodeURIComponent;
  const robot = program.command('robot').description("manage a project's robot accounts (credentials for CI)");
  robot
    .command('create <project> <name>')
    .description('create robot$<project>+<name> and print its secret (shown this once)')
    .option('--role <role>', 'guest (pull), developer (push) or maintainer (delete)', 'developer')
    .option('--expires <days>', 'lifetime, such as 90d, or never', '30d')
    .action(async (project: string, name: string, opts: { role: string; expires: string }) => {
      const expiresInDays = parseExpiry(opts.expires);
      const created = await client()<RobotJson>('POST', `/api/v1/projects/${enc(project)}/robots`, {
        name,
        role: opts.role,
        expiresInDays,
      });
      out(`created ${created.name} (${created.role}, ${created.expiresAt ? `expires ${created.expiresAt}` : 'never expires'})`);
      out(`secret: ${created.secret ?? ''}`);
      out('the secret is not shown again; log in with: docker login -u ' + `'${created.name}' --password-stdin <registry>`);
    });
  robot.command('list <project>').action(async (project: string) => {
    const { robots } = await client()<{ robots: RobotJson[] }>('GET', `/api/v1/projects/${enc(project)}/robots`);
    const rows = [
      ['NAME', 'ROLE', 'EXPIRES', 'LAST USED'],
      ...robots.map((r) => [r.name, r.role, r.expiresAt ?? 'never', r.lastUsedAt ?? 'never']),
    ];
    const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
    for (const row of rows)
      out(
        row
          .map((cell, i) => cell.padEnd(widths[i]!))
          .join('  ')
          .trimEnd(),
      );
  });
  robot
    .command('revoke <project> <name>')
    .description('delete a robot account: its secret and tokens stop working at once')
    .action(async (project: string, name: string) => {
      await client()('DELETE', `/api/v1/projects/${enc(project)}/robots/${enc(name)}`);
      out(`revoked robot ${name} of ${project}`);
    });
}
