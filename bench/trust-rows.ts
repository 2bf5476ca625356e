// Rows for what authentication and the signed-only gate cost on the hottest path, a manifest GET
// by tag: a Signet with htpasswd users (bcrypt cost 10, as `htpasswd -B -C 10` writes), a public
// project read anonymously, one private project without the gate and one signed-only project whose
// image carries a trusted signature. Targets: authenticated GETs at least 90% of the anonymous
// rate on the same server; a cached gate decision adding well under a millisecond of server time
// per GET (the server runs on one thread, so 1/rate is its time per request). The three loads take
// turns over a few rounds (the order flipping each round) and the median of each counts, as for
// the other request-load rows. The anonymous baseline is measured here, not taken from row 20: that
// is another process measured minutes earlier, and the host's speed drifts by more than the 10%
// being judged (the authenticated row against row 20 read 0.83x-1.12x over runs of one build).
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import bcrypt from 'bcryptjs';
import type { LoadGenerator } from './load.js';
import { ACCEPT_MANIFESTS, sha256 } from './registry-client.js';
import { startSignet, type Resources, type ServerHandle } from './servers.js';
import { median, type Row, type Table } from './table.js';
import { runLoad } from './workloads.js';
import { makeKey, payload, sign } from '../test/helpers/signing.js';

const USER = 'bench';
const PASSWORD = 'bench-password';
const AUTH = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString('base64')}`;

async function call(server: ServerHandle, method: string, urlPath: string, body?: Uint8Array | string, type?: string): Promise<Response> {
  const res = await fetch(`${server.baseUrl}${urlPath}`, {
    method,
    headers: { Authorization: AUTH, ...(type ? { 'Content-Type': type } : {}) },
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : new Uint8Array(body) }),
  });
  if (res.status >= 300) throw new Error(`${method} ${urlPath}: ${res.status} ${await res.text()}`);
  return res;
}

/** Pushes a one-layer image as `<repository>:latest`; returns its manifest digest. */
async function pushImage(server: ServerHandle, repository: string): Promise<string> {
  const layer = Buffer.from(`layer of ${repository} ${Date.now()}`);
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  for (const blob of [layer, config]) {
    await call(server, 'POST', `/v2/${repository}/blobs/uploads/?digest=${sha256(blob)}`, new Uint8Array(blob), 'application/octet-stream');
  }
  const manifest = Buffer.from(
    JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
    }),
  );
  await call(server, 'PUT', `/v2/${repository}/manifests/latest`, new Uint8Array(manifest), 'application/vnd.oci.image.manifest.v1+json');
  return sha256(manifest);
}

export interface TrustRows {
  anonymous: Row;
  authenticated: Row;
  gated: Row;
  gateCost: Row;
}

export function addTrustRows(table: Table, connections: number): TrustRows {
  const anonymous = table.add(`anonymous manifest GET, public project, c=${connections}`, 'req/s', { kind: 'info' });
  const authenticated = table.add(`authenticated manifest GET, c=${connections}`, 'req/s', { kind: 'of-row', row: anonymous, min: 0.9 });
  const gated = table.add(`signed-only manifest GET, c=${connections}`, 'req/s', { kind: 'of-row', row: authenticated, min: 0.5 });
  const gateCost = table.add('cached gate decision, server time per GET', 'ms', { kind: 'under', max: 1 });
  return { anonymous, authenticated, gated, gateCost };
}

export async function runTrustRows(
  resources: Resources,
  get: LoadGenerator,
  rows: TrustRows,
  options: { connections: number; seconds: number; rounds: number; warmupSeconds: number },
  record: (row: Row, server: ServerHandle, value: number | Error) => void,
): Promise<void> {
  const dir = await resources.tempDir('signet-bench-auth-');
  const htpasswd = path.join(dir, 'htpasswd');
  await writeFile(htpasswd, `${USER}:${bcrypt.hashSync(PASSWORD, 10).replace(/^\$2b\$/, '$2y$')}\n`);
  const server = await startSignet(resources, {
    REGISTRY_AUTH: 'htpasswd',
    REGISTRY_AUTH_HTPASSWD_PATH: htpasswd,
    REGISTRY_AUTH_ADMINS: USER,
  });
  try {
    const host = new URL(server.baseUrl).host;
    for (const name of ['open', 'gated'])
      await call(server, 'POST', '/api/v1/projects', JSON.stringify({ name, public: false }), 'application/json');
    await call(server, 'POST', '/api/v1/projects', JSON.stringify({ name: 'public', public: true }), 'application/json');
    await pushImage(server, 'public/app');
    await pushImage(server, 'open/app');
    const digest = await pushImage(server, 'gated/app');
    const key = await makeKey({ name: 'Bench Signer' });
    await call(server, 'POST', '/api/v1/projects/gated/keys', new Uint8Array(key.publicBinary), 'application/octet-stream');
    const signature = await sign(key, payload(digest, `${host}/gated/app:latest`));
    await call(
      server,
      'PUT',
      `/extensions/v2/gated/app/signatures/${digest}`,
      JSON.stringify({
        schemaVersion: 2,
        name: `${digest}@${'0'.repeat(32)}`,
        type: 'atomic',
        content: Buffer.from(signature).toString('base64'),
      }),
      'application/json',
    );
    await call(server, 'PATCH', '/api/v1/projects/gated', JSON.stringify({ signedOnly: true }), 'application/json');

    // [repository, with credentials]
    const loads: [string, boolean][] = [
      ['public/app', false],
      ['open/app', true],
      ['gated/app', true],
    ];
    const rates = new Map<string, number[]>(loads.map(([r]) => [r, []]));
    for (let round = 0; round < options.rounds; round++) {
      for (const [repository, withCredentials] of round % 2 === 0 ? loads : [...loads].reverse()) {
        const spec = {
          url: `${server.baseUrl}/v2/${repository}/manifests/latest`,
          method: 'GET' as const,
          headers: { Accept: ACCEPT_MANIFESTS, ...(withCredentials ? { Authorization: AUTH } : {}) },
          connections: options.connections,
          seconds: options.seconds / options.rounds,
        };
        const result = await runLoad(get, spec, round === 0 ? options.warmupSeconds : 0);
        rates.get(repository)!.push(result.rps);
      }
    }
    record(rows.anonymous, server, median(rates.get('public/app')!));
    const authenticated = median(rates.get('open/app')!);
    record(rows.authenticated, server, authenticated);
    const gated = median(rates.get('gated/app')!);
    record(rows.gated, server, gated);
    record(rows.gateCost, server, Math.max(0, (1 / gated - 1 / authenticated) * 1000));
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    for (const row of [rows.anonymous, rows.authenticated, rows.gated, rows.gateCost]) record(row, server, error);
  } finally {
    await server.stop();
  }
}
