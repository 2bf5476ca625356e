// `signet project|member|repo …`: the management API from the command line. Talks HTTP(S) to a
// running registry with the same credentials as docker login.
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import type { Command } from 'commander';
import { ApiCallError, type Call } from './api-client.js';
import { unreadable } from './failures.js';

type Out = (line: string) => void;

function table(rows: string[][], out: Out): void {
  const widths = rows[0]?.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length))) ?? [];
  for (const row of rows)
    out(
      row
        .map((cell, i) => cell.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd(),
    );
}

interface MirrorFlags {
  mirrorOf?: string;
  mirrorUser?: string;
  lookaside?: string;
  signedPrefix?: string;
  signatureExtension?: boolean;
}

/** The mirror settings the flags name; the password from SIGNET_MIRROR_PASSWORD (never a flag: argv is public). */
function mirrorBody(opts: MirrorFlags, mirrorPassword: () => string | undefined): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (opts.mirrorOf !== undefined) body.upstream = opts.mirrorOf;
  if (opts.mirrorUser !== undefined) {
    const password = mirrorPassword();
    if (password === undefined)
      throw new ApiCallError(0, `--mirror-user ${opts.mirrorUser} needs the upstream password in SIGNET_MIRROR_PASSWORD`);
    Object.assign(body, { username: opts.mirrorUser, password });
  }
  if (opts.lookaside !== undefined) body.lookaside = opts.lookaside;
  if (opts.signedPrefix !== undefined) body.signedPrefix = opts.signedPrefix;
  if (opts.signatureExtension !== undefined) body.useExtension = opts.signatureExtension;
  return body;
}

function withMirrorFlags(command: Command): Command {
  return command
    .option('--mirror-of <url>', 'mirror this upstream registry (http(s)://host[:port][/namespace])')
    .option('--mirror-user <name>', 'user at the upstream (password in SIGNET_MIRROR_PASSWORD)')
    .option('--lookaside <url>', "the upstream's lookaside signature base URL")
    .option('--signed-prefix <prefix>', 'what upstream signatures name (default: the upstream host[/namespace])')
    .option('--no-signature-extension', "do not read the upstream's signature API extension");
}

/** Adds the management commands; `client()` is built when a command runs. */
export function registerAdminCommands(
  program: Command,
  client: () => Call,
  out: Out,
  mirrorPassword: () => string | undefined = () => undefined,
): void {
  const enc = encodeURIComponent;
  const project = program.command('project').description('manage projects');
  project
    .command('list')
    .description('projects you can see')
    .action(async () => {
      const { projects } = await client()<{ projects: { name: string; public: boolean }[] }>('GET', '/api/v1/projects');
      table([['NAME', 'VISIBILITY'], ...projects.map((p) => [p.name, p.public ? 'public' : 'private'])], out);
    });
  withMirrorFlags(
    project
      .command('create <name>')
      .description('create a project (you become its admin); with --mirror-of, a mirror of an upstream registry')
      .option('--public', 'anyone may pull, also anonymously', false),
  ).action(async (name: string, opts: { public: boolean } & MirrorFlags) => {
    const mirror = mirrorBody(opts, mirrorPassword);
    // Commander sets signatureExtension (true) by default: it is a mirror setting only with --mirror-of.
    if (opts.mirrorOf === undefined && Object.keys(mirror).some((k) => k !== 'useExtension')) {
      throw new ApiCallError(0, 'mirror settings need --mirror-of <url>');
    }
    await client()('POST', '/api/v1/projects', { name, public: opts.public, ...(opts.mirrorOf !== undefined ? { mirror } : {}) });
    out(`created ${opts.public ? 'public' : 'private'} ${opts.mirrorOf !== undefined ? `mirror of ${opts.mirrorOf}` : 'project'} ${name}`);
  });
  project
    .command('show <name>')
    .description('a project with its members')
    .action(async (name: string) => out(JSON.stringify(await client()('GET', `/api/v1/projects/${enc(name)}`), null, 2)));
  project
    .command('set <name>')
    .description('change project settings')
    .option('--public', 'anyone may pull')
    .option('--private', 'only members may pull')
    .option('--signed-only', 'serve only images with a trusted signature')
    .option('--allow-unsigned', 'serve unsigned images too')
    .option('--mirror-of <url>', 'mirror this upstream registry (http(s)://host[:port][/namespace])')
    .option('--mirror-user <name>', 'user at the upstream (password in SIGNET_MIRROR_PASSWORD)')
    .option('--no-mirror-credentials', 'forget the upstream credentials')
    .option('--lookaside <url>', "the upstream's lookaside signature base URL")
    .option('--signed-prefix <prefix>', 'what upstream signatures name')
    .option('--signature-extension <on|off>', "read the upstream's signature API extension")
    .option('--no-mirror', 'stop mirroring (what was cached stays)')
    .action(
      async (
        name: string,
        opts: {
          public?: boolean;
          private?: boolean;
          signedOnly?: boolean;
          allowUnsigned?: boolean;
          mirror?: boolean;
          mirrorCredentials?: boolean;
          signatureExtension?: string;
        } & Omit<MirrorFlags, 'signatureExtension'>,
      ) => {
        const changes: Record<string, unknown> = {};
        const extension = opts.signatureExtension;
        if (extension !== undefined && extension !== 'on' && extension !== 'off')
          throw new ApiCallError(0, '--signature-extension takes on or off');
        const { signatureExtension: _text, ...flags } = opts;
        const mirror = mirrorBody(
          { ...flags, ...(extension !== undefined ? { signatureExtension: extension === 'on' } : {}) },
          mirrorPassword,
        );
        if (opts.mirrorCredentials === false) mirror.username = null;
        if (opts.mirror === false) changes.mirror = null;
        else if (Object.keys(mirror).length > 0) changes.mirror = mirror;
        if (opts.public && opts.private) throw new ApiCallError(0, 'say --public or --private, not both');
        if (opts.signedOnly && opts.allowUnsigned) throw new ApiCallError(0, 'say --signed-only or --allow-unsigned, not both');
        if (opts.public || opts.private) changes.public = Boolean(opts.public);
        if (opts.signedOnly || opts.allowUnsigned) changes.signedOnly = Boolean(opts.signedOnly);
        if (Object.keys(changes).length === 0) throw new ApiCallError(0, 'nothing to change: see signet project set --help');
        const project = await client()<{ public: boolean; signedOnly: boolean; mirror?: { upstream: string } }>(
          'PATCH',
          `/api/v1/projects/${enc(name)}`,
          changes,
        );
        out(
          `project ${name}: ${project.public ? 'public' : 'private'}, ${project.signedOnly ? 'signed images only' : 'unsigned images allowed'}` +
            (project.mirror ? `, mirror of ${project.mirror.upstream}` : ''),
        );
      },
    );
  project
    .command('delete <name>')
    .description('delete an empty project')
    .action(async (name: string) => {
      await client()('DELETE', `/api/v1/projects/${enc(name)}`);
      out(`deleted project ${name}`);
    });

  const member = program.command('member').description('manage project members');
  member.command('list <project>').action(async (name: string) => {
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
  member.command('remove <project> <user>').action(async (name: string, user: string) => {
    await client()('DELETE', `/api/v1/projects/${enc(name)}/members/${enc(user)}`);
    out(`removed ${user} from ${name}`);
  });

  const repo = program.command('repo').description('list what projects hold');
  repo.command('list <project>').action(async (name: string) => {
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

/** `<repository>@sha256:<hex>` or `<repository>:<tag>` into its parts. */
function parseImage(image: string): { repository: string; tag?: string; digest?: string } {
  const at = image.indexOf('@');
  if (at > 0) return { repository: image.slice(0, at), digest: image.slice(at + 1) };
  const colon = image.lastIndexOf(':');
  if (colon > image.lastIndexOf('/')) return { repository: image.slice(0, colon), tag: image.slice(colon + 1) };
  return { repository: image, tag: 'latest' };
}

function splitProject(repository: string): [string, string] {
  const slash = repository.indexOf('/');
  if (slash < 0) throw new ApiCallError(0, 'name the repository as project/name');
  return [repository.slice(0, slash), repository.slice(slash + 1)];
}

/** Finds `<repository path>@sha256=<hex>/signature-<N>` files, as skopeo's staging lookaside holds them. */
async function* stagedSignatures(root: string, dir = ''): AsyncGenerator<{ repository: string; hex: string; files: string[] }> {
  const entries = await readdir(path.join(root, dir), { withFileTypes: true });
  for (const entry of entries) {
    if (!entry.isDirectory()) continue;
    const rel = dir ? `${dir}/${entry.name}` : entry.name;
    const match = /^(.*)@sha256=([a-f0-9]{64})$/.exec(rel);
    if (!match) {
      yield* stagedSignatures(root, rel);
      continue;
    }
    const files = (await readdir(path.join(root, rel)))
      .filter((f) => /^signature-\d+$/.test(f))
      .sort((a, b) => Number(a.slice(10)) - Number(b.slice(10)));
    yield { repository: match[1]!, hex: match[2]!, files: files.map((f) => path.join(root, rel, f)) };
  }
}

export function registerSignatureCommands(program: Command, client: () => Call, out: Out): void {
  const enc = encodeURIComponent;
  const key = program.command('key').description("manage a project's trusted signing keys");
  key.command('list <project>').action(async (project: string) => {
    const { keys } = await client()<{ keys: { id: number; kind: string; fingerprint: string; userIds: string[] }[] }>(
      'GET',
      `/api/v1/projects/${enc(project)}/keys`,
    );
    table(
      [['ID', 'KIND', 'FINGERPRINT', 'USER IDS'], ...keys.map((k) => [String(k.id), k.kind, k.fingerprint, k.userIds.join(', ')])],
      out,
    );
  });
  key
    .command('add <project> <file>')
    .description('trust a public key: `gpg --export` output (armored or binary) or a cosign PEM key')
    .action(async (project: string, file: string) => {
      const key = await readFile(file).catch((err: unknown) => {
        throw unreadable('cannot read key file', file, err);
      });
      const res = await client().raw('POST', `/api/v1/projects/${enc(project)}/keys`, key, 'application/octet-stream');
      if (res.status >= 400) throw new ApiCallError(res.status, res.text);
      const added = JSON.parse(res.text) as { id: number; fingerprint: string };
      out(`${res.status === 201 ? 'trusted' : 'already trusted'}: key ${added.id} ${added.fingerprint}`);
    });
  key.command('remove <project> <id>').action(async (project: string, id: string) => {
    await client()('DELETE', `/api/v1/projects/${enc(project)}/keys/${enc(id)}`);
    out(`removed key ${id} from ${project}`);
  });

  program
    .command('policy <project>')
    .description("print the client policy.json (or --registries-d: the registries.d YAML) for a project's trusted keys")
    .option('--registries-d', 'print the registries.d YAML instead')
    .option(
      '--machine-config [role]',
      'print an OpenShift MachineConfig writing both files onto nodes of a role (default worker; other images accepted unless --reject-others)',
    )
    .option('--kbs', 'print the Confidential Containers KBS resources (security-policy, sigstore-config) as JSON')
    .option('--accept-others', 'accept images from elsewhere (default: reject them)')
    .option('--reject-others', 'with --machine-config: reject images from elsewhere')
    .action(
      async (
        project: string,
        opts: { registriesD?: boolean; machineConfig?: boolean | string; kbs?: boolean; acceptOthers?: boolean; rejectOthers?: boolean },
      ) => {
        const others = opts.acceptOthers ? '?default=accept' : '';
        let path = opts.registriesD ? 'registries.d.yaml' : `policy.json${others}`;
        if (opts.kbs) path = `kbs-resources.json${others}`;
        if (opts.machineConfig !== undefined) {
          const role = typeof opts.machineConfig === 'string' ? opts.machineConfig : 'worker';
          path = `machineconfig.yaml?role=${enc(role)}${opts.rejectOthers ? '&default=reject' : ''}`;
        }
        const res = await client().raw('GET', `/api/v1/projects/${enc(project)}/${path}`);
        if (res.status >= 400) throw new ApiCallError(res.status, res.text);
        out(res.text.trimEnd());
      },
    );

  const sigs = program.command('signatures').description('list and import image signatures');
  sigs
    .command('list <image>')
    .description('signatures of project/name:tag or project/name@sha256:…, with signer and trust')
    .action(async (image: string) => {
      const ref = parseImage(image);
      const [project, rest] = splitProject(ref.repository);
      let digest = ref.digest;
      if (!digest) {
        const { tags } = await client()<{ tags: { name: string; digest?: string }[] }>(
          'GET',
          `/api/v1/projects/${enc(project)}/repositories/${rest}/tags`,
        );
        digest = tags.find((t) => t.name === ref.tag)?.digest;
        if (!digest) throw new ApiCallError(404, `no tag ${ref.tag} in ${ref.repository}`);
      }
      const { signatures } = await client()<{
        signatures: {
          position: number;
          signerFingerprint?: string;
          signerKeyId: string;
          identity: string;
          trusted: boolean;
          reason?: string;
        }[];
      }>('GET', `/api/v1/projects/${enc(project)}/repositories/${rest}/signatures/${digest}`);
      out(`${ref.repository}@${digest}`);
      table(
        [
          ['#', 'SIGNER', 'IDENTITY', 'TRUSTED'],
          ...signatures.map((s) => [
            String(s.position),
            s.signerFingerprint ?? s.signerKeyId,
            s.identity,
            s.trusted ? 'yes' : `no (${s.reason ?? ''})`,
          ]),
        ],
        out,
      );
    });
  sigs
    .command('import <directory>')
    .description('upload a skopeo staging lookaside folder (default: /var/lib/containers/sigstore)')
    .option('--lookaside-path <path>', "the registry's lookaside base path", '/sigstore')
    .action(async (directory: string, opts: { lookasidePath: string }) => {
      await readdir(directory).catch((err: unknown) => {
        throw unreadable('cannot read signature folder', directory, err);
      });
      const api = client();
      let imported = 0;
      let present = 0;
      for await (const staged of stagedSignatures(directory)) {
        const base = `${opts.lookasidePath}/${staged.repository}@sha256=${staged.hex}`;
        // The next free number on the registry.
        let next = 1;
        while ((await api.raw('HEAD', `${base}/signature-${next}`)).status === 200) next += 1;
        for (const file of staged.files) {
          const res = await api.raw('PUT', `${base}/signature-${next}`, await readFile(file), 'application/octet-stream');
          if (res.status === 201) {
            imported += 1;
            next += 1;
          } else if (res.status === 200 || res.code === 'SIGNATURE_EXISTS') {
            present += 1;
          } else {
            throw new ApiCallError(res.status, `${file}: ${res.text}`);
          }
        }
      }
      out(`imported ${imported} signature(s), ${present} already present`);
    });
}
