// Rows for manifest pushes (issue 17): distinct small manifests PUT by tag from 16 keep-alive
// workers, each naming a config and a layer pushed to the repository beforehand, as the last step
// of pushing many images is; manifests per second and the CPU the registry's whole process tree
// spent per manifest. Rounds alternate between the registries, each into a new repository.
import { randomBytes } from 'node:crypto';
import { treeCpuMs } from './machine.js';
import { RegistryClient, sha256 } from './registry-client.js';
import { alternate, medianOf } from './rounds.js';
import type { ServerHandle } from './servers.js';
import { format, type Row, type Table } from './table.js';

const MEDIA_TYPE = 'application/vnd.oci.image.manifest.v1+json';

export interface ManifestOptions {
  count: number;
  concurrency: number;
  rounds: number;
}

export interface ManifestRows {
  rate: Row;
  cpu: Row;
}

export function addManifestRows(table: Table, o: ManifestOptions): ManifestRows {
  return {
    rate: table.add(`${o.count} manifest PUTs, c=${o.concurrency} (median of ${o.rounds})`, 'req/s', { kind: 'ratio', min: 1 }),
    cpu: table.add('manifest PUT: registry CPU per manifest (server and its processes)', 'ms/op', { kind: 'info' }),
  };
}

/** `count` manifests alike but for an annotation, all naming the same config and layer. */
function makeManifests(config: Buffer, layer: Buffer, count: number, round: number): Buffer[] {
  const descriptor = (mediaType: string, blob: Buffer) => ({ mediaType, digest: sha256(blob), size: blob.length });
  return Array.from({ length: count }, (_, i) =>
    Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA_TYPE,
        config: descriptor('application/vnd.oci.image.config.v1+json', config),
        layers: [descriptor('application/vnd.oci.image.layer.v1.tar+gzip', layer)],
        annotations: { 'org.opencontainers.image.version': `${round}.${i}` },
      }),
    ),
  );
}

/** One round: a config and a layer, then `o.count` manifests naming them into a repository of the round's own. */
export async function pushManifests(
  server: ServerHandle,
  o: ManifestOptions,
  round: number,
): Promise<{ rate: number; cpuMsPerOp: number }> {
  const repository = `bench/manifests-${round + 1}`;
  const client = new RegistryClient(server.baseUrl, o.concurrency);
  try {
    const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
    const layer = randomBytes(2048);
    await client.pushBlob(repository, config);
    await client.pushBlob(repository, layer);
    const manifests = makeManifests(config, layer, o.count, round);
    let next = 0;
    const worker = async (): Promise<void> => {
      while (next < manifests.length) {
        const i = next++;
        await client.putManifest(repository, `v${i}`, manifests[i]!, MEDIA_TYPE);
      }
    };
    const cpu = treeCpuMs(server.pid);
    const started = performance.now();
    await Promise.all(Array.from({ length: o.concurrency }, worker));
    const seconds = (performance.now() - started) / 1000;
    return { rate: o.count / seconds, cpuMsPerOp: (treeCpuMs(server.pid) - cpu) / o.count };
  } finally {
    client.close();
  }
}

export async function runManifestRows(
  servers: ServerHandle[],
  rows: ManifestRows,
  o: ManifestOptions,
  record: (row: Row, server: ServerHandle, value: number | Error) => void,
): Promise<void> {
  const results = await alternate(servers, o.rounds, 'manifest PUTs', async (server, round) => {
    const r = await pushManifests(server, o, round);
    console.log(
      `  ${server.label.padEnd(12)} round ${round + 1}: ${format(r.rate, 'req/s')} req/s, ${r.cpuMsPerOp.toFixed(2)} ms CPU/manifest`,
    );
    return r;
  });
  for (const [server, r] of results) {
    record(
      rows.rate,
      server,
      medianOf(r, (x) => x.rate),
    );
    record(
      rows.cpu,
      server,
      medianOf(r, (x) => x.cpuMsPerOp),
    );
  }
}
