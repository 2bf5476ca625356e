// `signet project|member|repo …`: the management API from the command line. Talks HTTP(S) to a
// running registry with the same credentials as docker login.
import type { Command } from 'commander';

export interface ClientSettings {
  registry: string;
  user?: string;
  password?: string;
}

interface ApiError {
  errors?: { code: string; message: string }[];
}

export class ApiCallError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
    this.name = 'ApiCallError';
  }
}

export function createApiClient(settings: ClientSettings) {
  const base = settings.registry.replace(/\/+$/, '');
  const headers: Record<string, string> = { Accept: 'application/json' };
  if (settings.user !== undefined) {
    headers.Authorization = `Basic ${Buffer.from(`${settings.user}:${settings.password ?? ''}`).toString('base64')}`;
  }
  return async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetch(`${base}${path}`, {
      method,
      headers: body === undefined ? headers : { ...headers, 'Content-Type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    if (!res.ok) {
      let message = `${res.status} ${res.statusText}`;
      try {
        const err = (JSON.parse(text) as ApiError).errors?.[0];
        if (err) message = `${err.code}: ${err.message}`;
      } catch {
        // not JSON: keep the status line
      }
      throw new ApiCallError(res.status, message);
    }
    return (text ? JSON.parse(text) : undefined) as T;
  };
}

type Call = ReturnType<typeof createApiClient>;
type Out = (line: string) => void;

function table(rows: string[][], out: Out): void {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  for (const row of rows) out(row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd());
}

/** Adds the management commands; `client()` is built when a command runs. */
export function registerAdminCommands(program: Command, client: () => Call, out: Out): void {
  const enc = encodeURIComponent;
  const project = program.command('project').description('manage projects');
  project
    .command('list')
    .description('projects you can see')
    .action(async () => {
      const { projects } = await client()<{ projects: { name: string; public: boolean }[] }>('GET', '/api/v1/projects');
      table([['NAME', 'VISIBILITY'], ...projects.map((p) => [p.name, p.public ? 'public' : 'private'])], out);
    });
  project
    .command('create <name>')
    .description('create a project (you become its admin)')
    .option('--public', 'anyone may pull, also anonymously', false)
    .action(async (name: string, opts: { public: boolean }) => {
      await client()('POST', '/api/v1/projects', { name, public: opts.public });
      out(`created ${opts.public ? 'public' : 'private'} project ${name}`);
    });
  project
    .command('show <name>')
    .description('a project with its members')
    .action(async (name: string) => out(JSON.stringify(await client()('GET', `/api/v1/projects/${enc(name)}`), null, 2)));
  project
    .command('set <name>')
    .description('change a project setting')
    .option('--public', 'anyone may pull')
    .option('--private', 'only members may pull')
    .action(async (name: string, opts: { public?: boolean; private?: boolean }) => {
      if (Boolean(opts.public) === Boolean(opts.private)) throw new ApiCallError(0, 'say --public or --private');
      await client()('PATCH', `/api/v1/projects/${enc(name)}`, { public: Boolean(opts.public) });
      out(`project ${name} is now ${opts.public ? 'public' : 'private'}`);
    });
  project
    .command('delete <name>')
    .description('delete an empty project')
    .action(async (name: string) => {
      await client()('DELETE', `/api/v1/projects/${enc(name)}`);
      out(`deleted project ${name}`);
    });

  const member = program.command('member').description('manage project members');
  member
    .command('list <project>')
    .action(async (name: string) => {
      const { members } = await client()<{ members: { user: string; role: string }[] }>('GET', `/api/v1/projects/${enc(name)}/members`);
      table([['USER', 'ROLE'], ...members.map((m) => [m.user, m.role])], out);
    });
  member
    .command('set <project> <user> <role>')
    .description('add a member or change a role: guest, developer, maintainer, admin')
    .action(async (name: string, user: string, role: string) => {
      await client()('PUT', `/api/v1/projects/${enc(name)}/members/${enc(user)}`, { role });
      out(`${user} is ${role} in ${name}`);
    });
  member
    .command('remove <project> <user>')
    .action(async (name: string, user: string) => {
      await client()('DELETE', `/api/v1/projects/${enc(name)}/members/${enc(user)}`);
      out(`removed ${user} from ${name}`);
    });

  const repo = program.command('repo').description('list what projects hold');
  repo
    .command('list <project>')
    .action(async (name: string) => {
      const { repositories } = await client()<{ repositories: { name: string }[] }>('GET', `/api/v1/projects/${enc(name)}/repositories`);
      for (const r of repositories) out(r.name);
    });
  repo
    .command('tags <repository>')
    .description('tags of a repository (project/name)')
    .action(async (repository: string) => {
      const slash = repository.indexOf('/');
      if (slash < 0) throw new ApiCallError(0, 'name the repository as project/name');
      const { tags } = await client()<{ tags: { name: string; digest?: string }[] }>(
        'GET',
        `/api/v1/projects/${enc(repository.slice(0, slash))}/repositories/${repository.slice(slash + 1)}/tags`,
      );
      table([['TAG', 'DIGEST'], ...tags.map((x) => [x.name, x.digest ?? ''])], out);
    });
}
