// The scale-out topology without Docker, on loopback: PostgreSQL (a fresh database on the server
// at SIGNET_TEST_POSTGRES_URL, default 127.0.0.1:5432), s3rver as the object store, two Signet
// replicas, and a round-robin proxy in front. `npm run cluster`; Ctrl-C stops and removes it all.
// The two-replica test (test/server/replicas.test.ts) runs the same topology.
import http from 'node:http';
import { createTestDatabase } from '../test/helpers/postgres.js';
import { startS3rver } from '../test/helpers/s3rver.js';
import { startServerProcess } from '../test/helpers/server-process.js';

const port = Number(process.env.SIGNET_CLUSTER_PORT ?? 5000);
const database = await createTestDatabase();
const s3 = await startS3rver();
const env = s3.registryEnv({
  REGISTRY_DATABASE_URL: database.url,
  REGISTRY_STORAGE_REDIRECT_DISABLE: 'true',
  REGISTRY_HTTP_HOST: `127.0.0.1:${port}`,
  // The proxy below, as REGISTRY_HTTP_TRUSTEDPROXIES names nginx in docker-compose.yml.
  REGISTRY_HTTP_TRUSTEDPROXIES: '127.0.0.1',
});
const replicas = await Promise.all([startServerProcess(env), startServerProcess(env)]);

// Round robin, streaming both ways (layers are large): what nginx does in docker-compose.yml.
let next = 0;
const proxy = http.createServer((req, res) => {
  const target = new URL(req.url ?? '/', replicas[next++ % replicas.length]!.url);
  const forwardedFor = [req.headers['x-forwarded-for'], req.socket.remoteAddress].filter(Boolean).join(', ');
  const headers = { ...req.headers, 'x-forwarded-for': forwardedFor };
  const upstream = http.request(target, { method: req.method, headers }, (answer) => {
    res.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(res);
  });
  upstream.on('error', () => res.destroy());
  req.pipe(upstream);
});
proxy.requestTimeout = 0;
await new Promise<void>((resolve) => proxy.listen(port, '127.0.0.1', resolve));

process.stdout.write(
  [
    `registry:  http://127.0.0.1:${port}  (round robin over ${replicas.map((r) => r.url).join(', ')})`,
    `database:  ${database.url}`,
    `s3:        ${env.REGISTRY_STORAGE_S3_REGIONENDPOINT} bucket ${env.REGISTRY_STORAGE_S3_BUCKET}`,
    'Ctrl-C stops everything and removes the database and the bucket.',
    '',
  ].join('\n'),
);

const stop = async (): Promise<void> => {
  proxy.close();
  await Promise.all(replicas.map((r) => r.kill('SIGTERM')));
  await s3.close();
  await database.drop();
  process.exit(0);
};
process.once('SIGINT', () => void stop());
process.once('SIGTERM', () => void stop());
