// Rows for hostile signature uploads: OpenPGP messages that fit the 64 KiB signature limit and
// would inflate to hundreds of MiB (compressed packets of zeros: one of about 1 KB nested twice,
// inflating to 512 MiB, and one of about 47 KB inflating to 48 MiB), PUT through the signature
// API one after another while another client keeps reading a manifest. Targets: the server's
// resident memory grows by under 50 MB (before the decompression cap, one such upload took it from
// 106 MB to 1.2 GB), and the other client's longest wait for an answer stays under 100 ms (it
// waited 4 s).
import { compressionBomb } from '../test/helpers/openpgp-bomb.js';
import { ACCEPT_MANIFESTS, sha256 } from './registry-client.js';
import { currentRss, sampleRss, startSignet, type Resources, type ServerHandle } from './servers.js';
import type { Row, Table } from './table.js';

const MiB = 1024 * 1024;
const UPLOADS = 6;

export interface BombRows {
  rssGrowth: Row;
  stall: Row;
}

export function addBombRows(table: Table): BombRows {
  return {
    rssGrowth: table.add(`RSS growth, ${UPLOADS} signature uploads inflating to 48-512 MiB`, 'MB', { kind: 'under', max: 50 }),
    stall: table.add('longest manifest GET meanwhile', 'ms', { kind: 'under', max: 100 }),
  };
}

async function put(server: ServerHandle, path: string, body: string, type: string): Promise<Response> {
  return fetch(`${server.baseUrl}${path}`, { method: 'PUT', body, headers: { 'Content-Type': type } });
}

/** A one-layer image at bomb/app:latest; its manifest digest. */
async function pushImage(server: ServerHandle): Promise<string> {
  const layer = Buffer.from(`layer ${Date.now()}`);
  const config = Buffer.from('{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}');
  for (const blob of [layer, config]) {
    const res = await fetch(`${server.baseUrl}/v2/bomb/app/blobs/uploads/?digest=${sha256(blob)}`, {
      method: 'POST',
      body: new Uint8Array(blob),
    });
    if (res.status !== 201) throw new Error(`blob push: ${res.status}`);
  }
  const manifest = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
    layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
  });
  const res = await put(server, '/v2/bomb/app/manifests/latest', manifest, 'application/vnd.oci.image.manifest.v1+json');
  if (res.status !== 201) throw new Error(`manifest push: ${res.status}`);
  return sha256(Buffer.from(manifest));
}

export async function runBombRows(
  resources: Resources,
  rows: BombRows,
  record: (row: Row, server: ServerHandle, value: number | Error) => void,
): Promise<void> {
  const server = await startSignet(resources, {}, 'Signet');
  try {
    const digest = await pushImage(server);
    const bombs = [await compressionBomb(512 * MiB, { nested: true }), await compressionBomb(48 * MiB)];
    // Warm up: the first signature read loads openpgp.js, which is not what is measured.
    await put(
      server,
      `/extensions/v2/bomb/app/signatures/${digest}`,
      JSON.stringify({ schemaVersion: 2, name: `${digest}@${'0'.repeat(32)}`, type: 'atomic', content: 'AAAA' }),
      'application/json',
    );
    const before = currentRss(server.pid);
    const rss = sampleRss(server.pid);
    let reading = true;
    let longest = 0;
    const reader = (async () => {
      while (reading) {
        const started = performance.now();
        const res = await fetch(`${server.baseUrl}/v2/bomb/app/manifests/latest`, { headers: { Accept: ACCEPT_MANIFESTS } });
        await res.arrayBuffer();
        longest = Math.max(longest, performance.now() - started);
      }
    })();
    for (let i = 0; i < UPLOADS; i++) {
      const content = bombs[i % bombs.length]!.toString('base64');
      const body = JSON.stringify({ schemaVersion: 2, name: `${digest}@${String(i + 1).repeat(32)}`, type: 'atomic', content });
      const res = await put(server, `/extensions/v2/bomb/app/signatures/${digest}`, body, 'application/json');
      // Refused for what it inflates to, not for its size on the wire.
      if (res.status !== 400) throw new Error(`the bomb was answered ${res.status}: ${await res.text()}`);
      await res.arrayBuffer();
    }
    reading = false;
    await reader;
    const peak = rss.stop();
    console.log(
      `  ${server.label.padEnd(12)} bomb uploads: RSS ${(before / 1e6).toFixed(1)} → peak ${(peak / 1e6).toFixed(1)} MB, longest GET ${longest.toFixed(1)} ms`,
    );
    record(rows.rssGrowth, server, Math.max(0, peak - before) / 1e6);
    record(rows.stall, server, longest);
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    record(rows.rssGrowth, server, error);
    record(rows.stall, server, error);
  } finally {
    await server.stop();
  }
}
