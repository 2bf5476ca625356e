// `BENCH_ONLY=scale`: reads as content grows (issue 22). N small manifests tagged in one repository
// (`scale/one`, tags t000000…) plus N more spread over N/10 repositories (`scale/s00000`…, tags
// t0…t9), 2N manifests stored, in Signet on its embedded PGlite (and, with BENCH_SCALE_POSTGRES=1,
// on the local PostgreSQL server in a fresh database) beside the Go registry. See bench/README.md,
// "Reads at scale".
//
// Populating goes around HTTP: pushing 2N manifests at 250-400/s would take most of an hour at
// N = 50,000, and pushes are not what is measured. One image (config and layer) is pushed over
// HTTP into `scale/one` of each registry; the rest is written as each registry stores it: rows in
// Signet's tables (batched INSERTs, the embedded database opened by this process while Signet is
// stopped), files in the Go registry's filesystem layout (docker/registry/v2/...).
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createTestDatabase } from '../test/helpers/postgres.js';
import { childPids } from '../test/helpers/server-process.js';
import { openPglite } from '../storage/pglite-engine.js';
import { ACCEPT_MANIFESTS, RegistryClient, sha256 } from './registry-client.js';
import { currentRss, GO_REGISTRY_BINARY, startGoRegistry, startSignet, type Resources, type ServerHandle } from './servers.js';
import { median, Table, type Row } from './table.js';

const QUICK = process.env.BENCH_QUICK === '1';
const N = Number(process.env.BENCH_SCALE ?? (QUICK ? 2000 : 50_000));
/** The small size the GET rows are compared with ("no more than 2x slower than at 1,000"). */
const BASE_N = 1000;
const WITH_POSTGRES = process.env.BENCH_SCALE_POSTGRES === '1';
const CONNECTIONS = 32;
const WARMUP_SECONDS = QUICK ? 1 : 3;
const ROUND_SECONDS = QUICK ? 2 : 5;
const ROUNDS = 3;
const PAGE = 100;
/** Walks of the whole tag list per registry (and against the bare server): the median counts. */
const WALKS = 3;
const WARMUP_WALKS = 6;
const BATCH = 2000;
const ONE = 'scale/one';
/** Restarts timed per Signet (the median counts), each followed by a cold full tag list. */
const RESTARTS = 3;
const MANIFEST_TYPE = 'application/vnd.oci.image.manifest.v1+json';

type RecordFigure = (row: Row, server: ServerHandle, value: number | Error) => void;

interface Image {
  config: Buffer;
  layer: Buffer;
}

interface Manifest {
  repository: string;
  tag: string;
  digest: string;
  content: string;
}

const oneTag = (i: number): string => `t${String(i).padStart(6, '0')}`;
const spreadRepo = (i: number): string => `scale/s${String(Math.floor(i / 10)).padStart(5, '0')}`;

/** The 2N manifests, each distinct by an annotation, all over the same config and layer. */
function* manifests(image: Image, n: number): Generator<Manifest> {
  const config = { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(image.config), size: image.config.length };
  const layer = { mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(image.layer), size: image.layer.length };
  for (const layout of ['one', 'spread'] as const) {
    for (let i = 0; i < n; i++) {
      const content = JSON.stringify({
        schemaVersion: 2,
        mediaType: MANIFEST_TYPE,
        config,
        layers: [layer],
        annotations: { 'org.example.scale': `${layout}-${i}` },
      });
      yield {
        repository: layout === 'one' ? ONE : spreadRepo(i),
        tag: layout === 'one' ? oneTag(i) : `t${i % 10}`,
        digest: sha256(Buffer.from(content)),
        content,
      };
    }
  }
}

function spreadRepositories(n: number): string[] {
  return Array.from({ length: Math.ceil(n / 10) }, (_, i) => spreadRepo(i * 10));
}

/** What both databases take: pg.Client and PGlite both have query(sql, params). */
interface Sql {
  query(sql: string, params?: unknown[]): Promise<unknown>;
}

/** Signet's rows for everything but the image pushed over HTTP. */
async function populateSql(db: Sql, image: Image, n: number): Promise<void> {
  const repositories = spreadRepositories(n);
  const blobDigests = [sha256(image.config), sha256(image.layer)];
  for (let i = 0; i < repositories.length; i += BATCH) {
    const names = repositories.slice(i, i + BATCH);
    await db.query('INSERT INTO repositories (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING', [names]);
    await db.query(
      `INSERT INTO repository_blobs (repository_id, digest)
       SELECT r.id, d FROM repositories r, unnest($2::text[]) d WHERE r.name = ANY($1::text[]) ON CONFLICT DO NOTHING`,
      [names, blobDigests],
    );
  }
  let batch: Manifest[] = [];
  const flush = async (): Promise<void> => {
    const cols = [batch.map((m) => m.repository), batch.map((m) => m.digest), batch.map((m) => m.content), batch.map((m) => m.tag)];
    await db.query('BEGIN');
    await db.query(
      `INSERT INTO manifests (repository_id, digest, media_type, content, size)
       SELECT r.id, t.d, '${MANIFEST_TYPE}', convert_to(t.c, 'UTF8'), octet_length(convert_to(t.c, 'UTF8'))
       FROM unnest($1::text[], $2::text[], $3::text[]) t (repo, d, c) JOIN repositories r ON r.name = t.repo`,
      cols.slice(0, 3),
    );
    await db.query(
      `INSERT INTO manifest_references (repository_id, manifest_digest, child_digest, child_kind)
       SELECT r.id, t.d, b, 'blob' FROM unnest($1::text[], $2::text[]) t (repo, d) JOIN repositories r ON r.name = t.repo,
         unnest($3::text[]) b`,
      [cols[0], cols[1], blobDigests],
    );
    await db.query(
      `INSERT INTO tags (repository_id, name, manifest_digest)
       SELECT r.id, t.tag, t.d FROM unnest($1::text[], $2::text[], $3::text[]) t (repo, d, tag) JOIN repositories r ON r.name = t.repo`,
      [cols[0], cols[1], cols[3]],
    );
    await db.query('COMMIT');
    batch = [];
  };
  for (const m of manifests(image, n)) {
    batch.push(m);
    if (batch.length === BATCH) await flush();
  }
  if (batch.length > 0) await flush();
}

/** The Go registry's files for everything but the image pushed over HTTP (distribution's storage/paths.go). */
function populateGoFiles(root: string, image: Image, n: number): void {
  const v2 = path.join(root, 'docker/registry/v2');
  const write = (file: string, data: string | Buffer): void => {
    mkdirSync(path.dirname(file), { recursive: true });
    writeFileSync(file, data);
  };
  const hex = (digest: string): string => digest.slice('sha256:'.length);
  const blobData = (digest: string): string => path.join(v2, 'blobs/sha256', hex(digest).slice(0, 2), hex(digest), 'data');
  const link = (repository: string, ...parts: string[]): string => path.join(v2, 'repositories', repository, ...parts, 'link');
  for (const repository of spreadRepositories(n)) {
    for (const blob of [image.config, image.layer]) write(link(repository, '_layers/sha256', hex(sha256(blob))), sha256(blob));
  }
  for (const m of manifests(image, n)) {
    write(blobData(m.digest), m.content);
    write(link(m.repository, '_manifests/revisions/sha256', hex(m.digest)), m.digest);
    write(link(m.repository, '_manifests/tags', m.tag, 'current'), m.digest);
    write(link(m.repository, '_manifests/tags', m.tag, 'index/sha256', hex(m.digest)), m.digest);
  }
}

async function pushImage(server: ServerHandle, image: Image): Promise<void> {
  const client = new RegistryClient(server.baseUrl, 2);
  try {
    await client.pushBlob(ONE, image.config);
    await client.pushBlob(ONE, image.layer);
  } finally {
    client.close();
  }
}

function duSync(dir: string): number {
  let total = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) total += duSync(full);
    else if (entry.isFile()) total += statSync(full).size;
  }
  return total;
}

/** Resident memory of a server and its children (Signet's embedded database), in MB. */
function treeRssMb(pid: number): number {
  return (currentRss(pid) + childPids(pid).reduce((sum, child) => sum + currentRss(child), 0)) / 1e6;
}

/** Runs a load generator (wrk, ab) to the end: its stdout and stderr together. */
async function runTool(binary: string, args: string[], mustSucceed: boolean): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let text = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (text += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (text += s));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 || !mustSucceed ? resolve(text) : reject(new Error(`${binary} exited ${code}: ${text}`))));
  });
}

interface WrkResult {
  rps: number;
  failed: number;
}

/** wrk with a script that asks for a random one of `paths` on each request. */
async function wrkRandom(scratch: string, baseUrl: string, layout: 'one' | 'spread', n: number, seconds: number): Promise<WrkResult> {
  const script = path.join(scratch, `scale-${layout}.lua`);
  const pathExpr =
    layout === 'one'
      ? `string.format("/v2/${ONE}/manifests/t%06d", i)`
      : `string.format("/v2/scale/s%05d/manifests/t%d", math.floor(i / 10), i % 10)`;
  writeFileSync(
    script,
    `math.randomseed(os.time())
request = function()
  local i = math.random(0, ${n - 1})
  return wrk.format("GET", ${pathExpr})
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT %d %d %d\\n", summary.requests, summary.duration,
    e.connect + e.read + e.write + e.status + e.timeout))
end
`,
  );
  const args = ['-t1', `-c${CONNECTIONS}`, `-d${seconds}s`, '--timeout', '5s', '-s', script, '-H', `Accept: ${ACCEPT_MANIFESTS}`, baseUrl];
  const out = await runTool('wrk', args, true);
  const match = /^BENCH_RESULT (\d+) (\d+) (\d+)$/m.exec(out);
  if (!match) throw new Error(`wrk printed no result: ${out}`);
  const [requests, durationUs, errors] = match.slice(1).map(Number);
  return { rps: (requests! - errors!) / (durationUs! / 1e6), failed: errors! };
}

/** ApacheBench HEAD of one blob. */
async function abHead(url: string, seconds: number): Promise<number> {
  // -r: a connection the server resets counts as a failed request (checked below) instead of
  // ending ab; the Go registry reset one keep-alive connection in 20,000 HEADs in one run.
  const args = ['-k', '-r', '-q', '-i', '-c', String(CONNECTIONS), '-t', String(seconds), '-n', '100000000', '-s', '5', url];
  const out = await runTool('ab', args, false);
  const complete = Number(/^Complete requests:\s+(\d+)/m.exec(out)?.[1]);
  const failed = Number(/^Non-2xx responses:\s+(\d+)/m.exec(out)?.[1] ?? 0) + Number(/^Failed requests:\s+(\d+)/m.exec(out)?.[1] ?? 0);
  const taken = Number(/^Time taken for tests:\s+([\d.]+)/m.exec(out)?.[1]);
  if (!complete || !taken) throw new Error(`ab failed: ${out}`);
  if (failed > complete / 100) throw new Error(`${failed} of ${complete} HEADs failed`);
  return (complete - failed) / taken;
}

/**
 * Blob HEAD rates as the GET rows take theirs: a warm-up each, then rounds taking turns (the
 * order flipping each round), the median round. One run of each, one after the other, gave the
 * same code 3.9x and 5.9x the Go registry on this shared machine.
 */
async function headRounds(servers: ServerHandle[], url: (s: ServerHandle) => string): Promise<Map<ServerHandle, number>> {
  for (const s of servers) await abHead(url(s), WARMUP_SECONDS);
  const results = new Map(servers.map((s) => [s, [] as number[]]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const s of round % 2 === 0 ? servers : [...servers].reverse()) results.get(s)!.push(await abHead(url(s), ROUND_SECONDS));
  }
  return new Map(servers.map((s) => [s, median(results.get(s)!)]));
}

async function timedGet(url: string): Promise<{ ms: number; body: string }> {
  const started = performance.now();
  const res = await fetch(url);
  const body = await res.text();
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status} ${body.slice(0, 200)}`);
  return { ms: performance.now() - started, body };
}

/**
 * Every tag of `scale/one`, PAGE at a time, following the Link header as clients do: the median ms
 * of WALKS walks after WARMUP_WALKS that are not counted, by bench/walk-client.ts in a process of
 * its own, on one keep-alive connection through undici's `request` (as Go clients such as skopeo
 * and crane walk on one connection; Node's fetch made the client most of the row: against a bare
 * server, 500 round trips cost it 390-430 ms, `request` 60-120). The row is a running registry's,
 * and the client's first walks are mostly V8 compiling its own code: a fresh client process's
 * twelve walks of an already warm registry on PostgreSQL took 700, 356, 292, 208, 153, 142, 105,
 * 95, 93, 108, 99 and 97 ms. The walks also come right after the restarts, when the registry's
 * page handler is being compiled the same way.
 */
async function medianWalk(baseUrl: string, n: number): Promise<number> {
  const client = fileURLToPath(new URL('./walk-client.ts', import.meta.url));
  const out = await runTool(
    process.execPath,
    ['--import', 'tsx', client, baseUrl, ONE, String(PAGE), String(n), String(WARMUP_WALKS), String(WALKS)],
    true,
  );
  const walks = JSON.parse(out.trim().split('\n').pop() ?? '[]') as number[];
  if (walks.length !== WALKS) throw new Error(`the walk client printed ${out}`);
  return median(walks);
}

/**
 * The same walk against a bare Node.js HTTP server that makes each page up (names t000000…, the
 * Link header while more are left): what the client and one HTTP round trip per page cost on this
 * machine whatever the registry does, the floor under the walk row.
 */
async function walkFloor(n: number): Promise<number> {
  const script = `
    const http = require('node:http');
    const n = ${n}, page = ${PAGE};
    const name = (i) => 't' + String(i).padStart(6, '0');
    http.createServer((req, res) => {
      const last = new URL(req.url, 'http://x').searchParams.get('last');
      const from = last ? Number(last.slice(1)) + 1 : 0;
      const tags = [];
      for (let i = from; i < Math.min(n, from + page); i++) tags.push(name(i));
      if (from + page < n) res.setHeader('Link', '</v2/floor/tags/list?n=' + page + '&last=' + name(from + page - 1) + '>; rel="next"');
      res.setHeader('Content-Type', 'application/json');
      res.end(JSON.stringify({ name: 'floor', tags }));
    }).listen(0, '127.0.0.1', function () { console.log(this.address().port); });`;
  const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    const port = await new Promise<number>((resolve, reject) => {
      child.stdout.once('data', (data: Buffer) => resolve(Number(String(data).trim())));
      child.once('exit', () => reject(new Error('the floor server exited')));
    });
    return await medianWalk(`http://127.0.0.1:${port}`, n);
  } finally {
    child.kill();
  }
}

/** One full tag list: ms. */
async function fullList(baseUrl: string, n: number): Promise<number> {
  const { ms, body } = await timedGet(`${baseUrl}/v2/${ONE}/tags/list`);
  const tags = (JSON.parse(body) as { tags?: string[] }).tags?.length;
  if (tags !== n) throw new Error(`full list has ${tags} tags, expected ${n}`);
  return ms;
}

/** Three full lists of the Go registry (it lists every tag on each request): the median ms. */
async function goFullLists(baseUrl: string, n: number): Promise<number> {
  const times: number[] = [];
  for (let round = 0; round < RESTARTS; round++) times.push(await fullList(baseUrl, n));
  return median(times);
}

interface ScaleRows {
  getOne: Row;
  getSpread: Row;
  head: Row;
  walk: Row;
  walkFloor: Row;
  coldList: Row;
  rss: Row;
  restart: Row;
  dbSize: Row;
  wal: Row;
}

function addRows(table: Table, system: string, n: number): ScaleRows {
  const at = `N=${n.toLocaleString('en-US')}, ${system}`;
  return {
    getOne: table.add(`manifest GET, random tag of ${n.toLocaleString('en-US')} in one repo (${at})`, 'req/s', { kind: 'ratio', min: 5 }),
    getSpread: table.add(`manifest GET, random tag over ${Math.ceil(n / 10)} repos (${at})`, 'req/s', { kind: 'ratio', min: 5 }),
    head: table.add(`blob HEAD (${at})`, 'req/s', { kind: 'ratio', min: 5 }),
    walk: table.add(`tag list walk, pages of ${PAGE} (${at})`, 'ms', { kind: 'under', max: 150 }),
    walkFloor: table.add(`  the same walk against a bare Node.js server (the client's floor)`, 'ms', { kind: 'info' }),
    coldList: table.add(`cold full tag list (${at}; target ≤ Go)`, 'ms', { kind: 'info' }),
    rss: table.add(`idle RSS after the loads, server + database (${at})`, 'MB', { kind: 'info' }),
    restart: table.add(`restart until /v2/ answers 200 (${at})`, 'ms', { kind: 'under', max: 500 }),
    dbSize: table.add(`database size (${at}; PGlite: directory, PostgreSQL: pg_database_size)`, 'MB', { kind: 'info' }),
    wal: table.add(`  of which WAL (${at})`, 'MB', { kind: 'info' }),
  };
}

interface Target {
  server: ServerHandle;
  rows: ScaleRows;
  /** Signet's PGlite data directory, or its PostgreSQL database URL. */
  dataDirectory?: string;
  url?: string;
  /** Stops the server, starts it again: ms from the start until /v2/ answered. */
  restart?: () => Promise<number>;
}

async function startSignetAt(resources: Resources, dir: string, url: string | undefined, label: string): Promise<ServerHandle> {
  return startSignet(
    resources,
    {
      REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(dir, 'storage'),
      REGISTRY_DATABASE_DATADIRECTORY: path.join(dir, 'database'),
      ...(url ? { REGISTRY_DATABASE_URL: url } : {}),
    },
    label,
  );
}

/** A Signet holding the 2N manifests; with a URL on PostgreSQL, else on PGlite. */
async function populatedSignet(resources: Resources, image: Image, n: number, url: string | undefined, label: string): Promise<Target> {
  const dir = await resources.tempDir('signet-scale-');
  let server = await startSignetAt(resources, dir, url, label);
  await pushImage(server, image);
  const started = performance.now();
  if (url) {
    const client = new pg.Client({ connectionString: url });
    await client.connect();
    try {
      await populateSql(client, image, n);
      await client.query('VACUUM ANALYZE');
    } finally {
      await client.end();
    }
  } else {
    await server.stop();
    // Opened as the server opens it (storage/pglite-engine.ts), so the fill leaves the WAL and the
    // files the server would.
    const db = await openPglite(path.join(dir, 'database'));
    await populateSql(db, image, n);
    await db.query('VACUUM ANALYZE');
    await db.close();
    server = await startSignetAt(resources, dir, url, label);
  }
  console.log(`  ${label}: ${2 * n} manifests written in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  const target: Target = {
    server,
    rows: undefined as unknown as ScaleRows,
    dataDirectory: path.join(dir, 'database'),
    ...(url ? { url } : {}),
  };
  target.restart = async () => {
    await target.server.stop();
    const started = performance.now();
    target.server = await startSignetAt(resources, dir, url, label);
    return target.server.answeredAt - started;
  };
  return target;
}

async function populatedGo(resources: Resources, image: Image, n: number): Promise<ServerHandle> {
  const server = await startGoRegistry(resources);
  await pushImage(server, image);
  const started = performance.now();
  populateGoFiles(path.join(path.dirname(server.stderrFile), 'storage'), image, n);
  console.log(`  Go registry: ${2 * n} manifests written as files in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  return server;
}

async function databaseSize(target: Target): Promise<{ total: number; wal: number }> {
  if (target.url) {
    const client = new pg.Client({ connectionString: target.url });
    await client.connect();
    try {
      const rows = await client.query<{ size: string }>('SELECT pg_database_size(current_database()) AS size');
      return { total: Number(rows.rows[0]!.size) / 1e6, wal: Number.NaN };
    } finally {
      await client.end();
    }
  }
  const dir = target.dataDirectory!;
  return { total: duSync(dir) / 1e6, wal: duSync(path.join(dir, 'pg_wal')) / 1e6 };
}

/** The GET rows, rounds taking turns between the registries (the order flipping each round). */
async function getRounds(
  scratch: string,
  servers: { label: string; baseUrl: string; row: Row; server: ServerHandle }[],
  layout: 'one' | 'spread',
  n: number,
  record: RecordFigure,
): Promise<void> {
  for (const s of servers) await wrkRandom(scratch, s.baseUrl, layout, n, WARMUP_SECONDS);
  const results = new Map(servers.map((s) => [s, [] as number[]]));
  for (let round = 0; round < ROUNDS; round++) {
    for (const s of round % 2 === 0 ? servers : [...servers].reverse()) {
      const r = await wrkRandom(scratch, s.baseUrl, layout, n, ROUND_SECONDS);
      if (r.failed > 0) process.stderr.write(`  ${s.label}: ${r.failed} failed requests\n`);
      results.get(s)!.push(r.rps);
    }
  }
  for (const s of servers) record(s.row, s.server, median(results.get(s)!));
}

export async function runScaleRows(resources: Resources, record: RecordFigure): Promise<void> {
  const scratch = await resources.tempDir('signet-scale-scratch-');
  const image: Image = {
    config: Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } })),
    layer: Buffer.from(`scale bench layer ${Date.now()}`),
  };
  const table = new Table();
  const hasGo = existsSync(GO_REGISTRY_BINARY);

  // The small size first, PGlite only: what the GET rows at N are compared with.
  const baseRows = {
    one: table.add(`manifest GET, random tag, one repo (N=${BASE_N}, PGlite)`, 'req/s', { kind: 'info' }),
    spread: table.add(`manifest GET, random tag, spread (N=${BASE_N}, PGlite)`, 'req/s', { kind: 'info' }),
  };
  if (N > BASE_N && process.env.BENCH_SCALE_BASE !== '0') {
    console.log(`bench: N=${BASE_N} on PGlite, for comparison`);
    const base = await populatedSignet(resources, image, BASE_N, undefined, 'Signet');
    for (const layout of ['one', 'spread'] as const) {
      await getRounds(
        scratch,
        [{ label: 'Signet', baseUrl: base.server.baseUrl, row: layout === 'one' ? baseRows.one : baseRows.spread, server: base.server }],
        layout,
        BASE_N,
        record,
      );
    }
    await base.server.stop();
  }

  console.log(`bench: populating ${2 * N} manifests per registry`);
  const signets: Target[] = [await populatedSignet(resources, image, N, undefined, 'Signet')];
  signets[0]!.rows = addRows(table, 'PGlite', N);
  if (WITH_POSTGRES) {
    const database = await createTestDatabase();
    resources.defer(() => database.drop());
    const target = await populatedSignet(resources, image, N, database.url, 'Signet');
    target.rows = addRows(table, 'PostgreSQL', N);
    signets.push(target);
  }
  const go = hasGo ? await populatedGo(resources, image, N) : undefined;

  for (const target of signets) {
    // Three restarts, each followed by the first full list (Signet's cache is empty after a
    // restart, and later lists of any page size are cut from the list that one read): medians.
    const restarts: number[] = [];
    const lists: number[] = [];
    for (let round = 0; round < RESTARTS; round++) {
      restarts.push(await target.restart!());
      lists.push(await fullList(target.server.baseUrl, N));
    }
    record(target.rows.restart, target.server, median(restarts));
    record(target.rows.coldList, target.server, median(lists));
    record(target.rows.walk, target.server, await medianWalk(target.server.baseUrl, N));
    record(target.rows.walkFloor, target.server, await walkFloor(N));
  }
  if (go) {
    const goCold = await goFullLists(go.baseUrl, N);
    for (const target of signets) {
      record(target.rows.coldList, go, goCold);
      target.rows.coldList.target = { kind: 'under', max: goCold };
    }
  }
  for (const layout of ['one', 'spread'] as const) {
    for (const target of signets) {
      const servers = [
        {
          label: target.server.label,
          baseUrl: target.server.baseUrl,
          row: layout === 'one' ? target.rows.getOne : target.rows.getSpread,
          server: target.server,
        },
      ];
      if (go)
        servers.push({
          label: go.label,
          baseUrl: go.baseUrl,
          row: layout === 'one' ? target.rows.getOne : target.rows.getSpread,
          server: go,
        });
      await getRounds(scratch, servers, layout, N, record);
    }
  }
  const layerUrl = (s: ServerHandle): string => `${s.baseUrl}/v2/${ONE}/blobs/${sha256(image.layer)}`;
  const heads = await headRounds([...(go ? [go] : []), ...signets.map((t) => t.server)], layerUrl);
  for (const target of signets) {
    record(target.rows.head, target.server, heads.get(target.server)!);
    if (go) record(target.rows.head, go, heads.get(go)!);
  }
  await new Promise((resolve) => setTimeout(resolve, 2000));
  for (const target of signets) {
    record(target.rows.rss, target.server, treeRssMb(target.server.pid));
    if (go) record(target.rows.rss, go, treeRssMb(go.pid));
    const size = await databaseSize(target);
    record(target.rows.dbSize, target.server, size.total);
    if (!Number.isNaN(size.wal)) record(target.rows.wal, target.server, size.wal);
  }
  if (signets.length === 2) {
    const ratio = table.add(`PGlite size / PostgreSQL size (N=${N.toLocaleString('en-US')})`, 'x', { kind: 'under', max: 1.5 });
    const [lite, server] = signets.map((t) => t.rows.dbSize.figures.get('Signet'));
    if (lite && server && 'value' in lite && 'value' in server) record(ratio, signets[0]!.server, lite.value / server.value);
  }
  for (const target of signets) await target.server.stop();
  console.log(
    `bench: load average ${os
      .loadavg()
      .map((l) => l.toFixed(1))
      .join(' ')} (the machine has ${os.cpus().length} cores; the rounds above shared it with whatever else ran)`,
  );
  table.print('Signet', go ? go.label : undefined);
}
