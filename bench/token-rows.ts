// Rows for token mode (REGISTRY_AUTH=token): what a bearer token costs on the hottest path, a
// manifest GET by tag, against anonymous GETs of a public project on the same server in the same
// rounds (as bench/trust-rows.ts measures Basic credentials), for a guest of a private project
// (not a registry admin, whose requests skip the project look-up); what a robot account's Basic
// credentials cost (a sha256, never bcrypt); and what the token service spends per token (one
// ES256 signature, the roles of the scope checked, over keep-alive connections with Basic
// credentials remembered after the first bcrypt check). Targets: bearer and robot GETs at least
// 90% of the anonymous rate; the cost per token is reported.
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import type { LoadGenerator } from './load.js';
import { ACCEPT_MANIFESTS, sha256 } from './registry-client.js';
import { startSignet, type Resources, type ServerHandle } from './servers.js';
import { median, type Row, type Table } from './table.js';
import { runLoad } from './workloads.js';

const USER = 'bench';
const PASSWORD = 'bench-password';
const AUTH = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;
/** A guest of the private project: the bearer token's and the token endpoint's user (no admin shortcut). */
const PULLER = 'puller';
const PULLER_AUTH = `Basic ${Buffer.from(`${PULLER}:${PASSWORD}`).toString('base64')}`;

async function call(server: ServerHandle, method: string, urlPath: string, body?: Uint8Array | string, type?: string): Promise<Response> {
  const res = await fetch(`${server.baseUrl}${urlPath}`, {
    method,
    headers: { Authorization: AUTH, ...(type ? { 'Content-Type': type } : {}) },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : new Uint8Array(body) }),
  });
  if (res.status >= 300) throw new Error(`${method} ${urlPath}: ${res.status} ${await res.text()}`);
  return res;
}

async function pushImage(server: ServerHandle, repository: string): Promise<void> {
  const layer = Buffer.from(`layer of ${repository} ${Date.now()}`);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  for (const blob of [layer, config]) {
    await call(server, 'POST', `/v2/${repository}/blobs/uploads/?digest=${sha256(blob)}`, new Uint8Array(blob), 'application/octet-stream');
  }
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
  });
  await call(server, 'PUT', `/v2/${repository}/manifests/latest`, manifest, 'application/vnd.oci.image.manifest.v1+json');
}

export interface TokenRows {
  anonymous: Row;
  bearer: Row;
  robot: Row;
  tokens: Row;
  perToken: Row;
}

export function addTokenRows(table: Table, connections: number): TokenRows {
  const anonymous = table.add(`token mode: anonymous manifest GET, public project, c=${connections}`, 'req/s', { kind: 'info' });
  return {
    anonymous,
    bearer: table.add(`token mode: manifest GET with a bearer token, c=${connections}`, 'req/s', {
      kind: 'of-row',
      row: anonymous,
      min: 0.9,
    }),
    robot: table.add(`token mode: manifest GET with a robot's Basic credentials, c=${connections}`, 'req/s', {
      kind: 'of-row',
      row: anonymous,
      min: 0.9,
    }),
    tokens: table.add(`token endpoint: GET /token, Basic credentials, one scope, c=${connections}`, 'tokens/s', { kind: 'info' }),
    perToken: table.add('token endpoint: server time per token', 'ms', { kind: 'info' }),
  };
}

export async function runTokenRows(
  resources: Resources,
  get: LoadGenerator,
  rows: TokenRows,
  options: { connections: number; seconds: number; rounds: number; warmupSeconds: number },
  record: (row: Row, server: ServerHandle, value: number | Error) => void,
): Promise<void> {
  const dir = await resources.tempDir('signet-bench-token-');
  const htpasswd = path.join(dir, 'htpasswd');
  const entry = (user: string) => `${user}:${bcrypt.hashSync(PASSWORD, 10).replace(/^\$2b\$/, '$2y$')}\n`;
  await writeFile(htpasswd, entry(USER) + entry(PULLER));
  const server = await startSignet(resources, {
    REGISTRY_AUTH: 'token',
    REGISTRY_AUTH_HTPASSWD_PATH: htpasswd,
    REGISTRY_AUTH_ADMINS: USER,
    // Longer than the run, so one token serves every round.
    REGISTRY_AUTH_TOKEN_EXPIRATION: '1h',
  });
  const all = [rows.anonymous, rows.bearer, rows.robot, rows.tokens, rows.perToken];
  try {
    await call(server, 'POST', '/api/v1/projects', JSON.stringify({ name: 'public', public: true }), 'application/json');
    await call(server, 'POST', '/api/v1/projects', JSON.stringify({ name: 'private', public: false }), 'application/json');
    await pushImage(server, 'public/app');
    await pushImage(server, 'private/app');
    await call(server, 'PUT', `/api/v1/projects/private/members/${PULLER}`, JSON.stringify({ role: 'guest' }), 'application/json');
    const robot = (await (
      await call(
        server,
        'POST',
        '/api/v1/projects/private/robots',
        JSON.stringify({ name: 'bench', role: 'guest', expiresInDays: 1 }),
        'application/json',
      )
    ).json()) as {
      name: string;
      secret: string;
    };
    const tokenPath = `/token?service=signet&scope=${encodeURIComponent('repository:private/app:pull')}`;
    const tokenAnswer = await fetch(`${server.baseUrl}${tokenPath}`, { headers: { Authorization: PULLER_AUTH } });
    const { token } = (await tokenAnswer.json()) as { token: string };

    const manifest = (repository: string) => `${server.baseUrl}/v2/${repository}/manifests/latest`;
    // [key, url, Authorization]
    const loads: [string, string, string | undefined][] = [
      ['anonymous', manifest('public/app'), undefined],
      ['bearer', manifest('private/app'), `Bearer ${token}`],
      ['robot', manifest('private/app'), `Basic ${Buffer.from(`${robot.name}:${robot.secret}`).toString('base64')}`],
      ['tokens', `${server.baseUrl}${tokenPath}`, PULLER_AUTH],
    ];
    const rates = new Map<string, number[]>(loads.map(([key]) => [key, []]));
    const run = async ([key, url, authorization]: (typeof loads)[number], seconds: number, warmupSeconds: number): Promise<void> => {
      const spec = {
        url,
        method: 'GET' as const,
        headers: {
          Accept: key === 'tokens' ? 'application/json' : ACCEPT_MANIFESTS,
          ...(authorization ? { Authorization: authorization } : {}),
        },
        connections: options.connections,
        seconds,
      };
      rates.get(key)!.push((await runLoad(get, spec, warmupSeconds)).rps);
    };
    // Rows 37-39 take turns in twice as many rounds of about half the length, the order flipping each
    // round. The token endpoint's load (row 40: ES256 signatures, whose garbage is collected
    // during whatever runs next) comes after them: taking turns with them, it came right before
    // row 39 in every other round. On 5 December 2026, a host losing 25-40 % of its CPU to other
    // guests, row 39 fell to 0.83x and 0.88x in two full runs while BENCH_ONLY=token gave
    // 0.99-1.51x: these rows are noise-bound there, and the position was the one bias the design
    // itself added.
    const compared = loads.filter(([key]) => key !== 'tokens');
    const tokenLoad = loads.find(([key]) => key === 'tokens')!;
    for (let round = 0; round < 2 * options.rounds; round++) {
      for (const load of round % 2 === 0 ? compared : [...compared].reverse()) {
        // Whole seconds (wrk's -d): 3 s each for the default 15 s in three rounds.
        await run(load, Math.ceil(options.seconds / (2 * options.rounds)), round === 0 ? options.warmupSeconds : 0);
      }
    }
    for (let round = 0; round < options.rounds; round++) {
      await run(tokenLoad, options.seconds / options.rounds, round === 0 ? options.warmupSeconds : 0);
    }
    record(rows.anonymous, server, median(rates.get('anonymous')!));
    record(rows.bearer, server, median(rates.get('bearer')!));
    record(rows.robot, server, median(rates.get('robot')!));
    const tokens = median(rates.get('tokens')!);
    record(rows.tokens, server, tokens);
    // The server runs on one thread: 1/rate is its time per token.
    record(rows.perToken, server, 1000 / tokens);
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    for (const row of all) record(row, server, error);
  } finally {
    await server.stop();
  }
}
