// Rows for the web console (issue 18): what a browser downloads on the first visit, compressed as
// the server sends it, and how soon the page of a 5,000-tag repository is usable in Chromium.
// Signet only. The tags differ by an annotation (distinct manifests over the same blobs) and the
// first 100 carry a trusted signature in a signed-only project, so the first page shows 25
// verified tags, each judged by the pull gate as a pull would be.
import { existsSync } from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';
import { gunzipSync } from 'node:zlib';
import { chromium } from 'playwright-core';
import { sha256 } from './registry-client.js';
import { startSignet, type Resources, type ServerHandle } from './servers.js';
import { median, type Row, type Table } from './table.js';
import { makeKey, payload, sign } from '../test/helpers/signing.js';

const CHROMIUM = process.env.BENCH_CHROMIUM ?? '/usr/bin/chromium';
const TAGS = 5000;
const SIGNED = 100;
const PUSH_CONCURRENCY = 8;
const PAGE_LOADS = 3;

export interface ConsoleRows {
  firstLoad: Row;
  tagPage: Row;
  trustShown: Row;
  nextPage: Row;
}

export function addConsoleRows(table: Table): ConsoleRows {
  return {
    firstLoad: table.add('console first load: page, script and style, compressed (gzip)', 'KB', { kind: 'under', max: 150 }),
    tagPage: table.add(
      `console: ${TAGS.toLocaleString('en-US')}-tag repository page usable, fresh browser (median of ${PAGE_LOADS})`,
      'ms',
      {
        kind: 'under',
        max: 1000,
      },
    ),
    trustShown: table.add("console: that page's 25 gate decisions shown", 'ms', { kind: 'info' }),
    nextPage: table.add('console: next page usable', 'ms', { kind: 'info' }),
  };
}

/** Bytes on the wire of a GET answered with gzip (Content-Length of the compressed body). */
function compressedBytes(url: string, accept: string): Promise<{ bytes: number; body: string }> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { headers: { Accept: accept, 'Accept-Encoding': 'gzip' } }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          if (res.statusCode !== 200) return reject(new Error(`GET ${url}: ${res.statusCode}`));
          const raw = Buffer.concat(chunks);
          const body = (res.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw).toString('utf8');
          resolve({ bytes: raw.length, body });
        });
      })
      .on('error', reject);
  });
}

async function measureFirstLoad(server: ServerHandle): Promise<number> {
  const page = await compressedBytes(`${server.baseUrl}/`, 'text/html');
  let total = page.bytes;
  for (const match of page.body.matchAll(/(?:src|href)="(\/assets\/[^"]+)"/g))
    total += (await compressedBytes(`${server.baseUrl}${match[1]}`, '*/*')).bytes;
  return total / 1000;
}

async function call(server: ServerHandle, method: string, urlPath: string, body?: Uint8Array | string, type?: string): Promise<void> {
  const res = await fetch(`${server.baseUrl}${urlPath}`, {
    method,
    ...(type ? { headers: { 'Content-Type': type } } : {}),
    ...(body === undefined ? {} : { body: typeof body === 'string' ? body : new Uint8Array(body) }),
  });
  if (res.status >= 300) throw new Error(`${method} ${urlPath}: ${res.status} ${await res.text()}`);
}

/** `bench/app` with TAGS tags v0000…, each its own manifest; the first SIGNED signed by a trusted key. */
async function fillRepository(server: ServerHandle): Promise<void> {
  const host = new URL(server.baseUrl).host;
  await call(server, 'POST', '/api/v1/projects', JSON.stringify({ name: 'bench', public: false }), 'application/json');
  const key = await makeKey({ name: 'Bench Signer' });
  await call(server, 'POST', '/api/v1/projects/bench/keys', new Uint8Array(key.publicBinary), 'application/octet-stream');
  const layer = Buffer.from('console bench layer');
  const config = Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }));
  for (const blob of [layer, config]) {
    await call(server, 'POST', `/v2/bench/app/blobs/uploads/?digest=${sha256(blob)}`, new Uint8Array(blob), 'application/octet-stream');
  }
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let i = next++; i < TAGS; i = next++) {
      const tag = `v${String(i).padStart(4, '0')}`;
      const manifest = Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config: { mediaType: 'application/vnd.oci.image.config.v1+json', digest: sha256(config), size: config.length },
          layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: sha256(layer), size: layer.length }],
          annotations: { 'org.example.build': tag },
        }),
      );
      await call(server, 'PUT', `/v2/bench/app/manifests/${tag}`, new Uint8Array(manifest), 'application/vnd.oci.image.manifest.v1+json');
      if (i < SIGNED) {
        const digest = sha256(manifest);
        const signature = await sign(key, payload(digest, `${host}/bench/app:${tag}`));
        const body = {
          schemaVersion: 2,
          name: `${digest}@${'0'.repeat(32)}`,
          type: 'atomic',
          content: Buffer.from(signature).toString('base64'),
        };
        await call(server, 'PUT', `/extensions/v2/bench/app/signatures/${digest}`, JSON.stringify(body), 'application/json');
      }
    }
  };
  await Promise.all(Array.from({ length: PUSH_CONCURRENCY }, worker));
  await call(server, 'PATCH', '/api/v1/projects/bench', JSON.stringify({ signedOnly: true }), 'application/json');
}

/**
 * Milliseconds from the start of the navigation (a fresh browser context: nothing cached) until the
 * first page's 25 tags are listed with their digests and "Next page" can be used, and until each
 * shows the gate's decision; then from a click on "Next page" until the next 25 are listed.
 */
async function measurePages(server: ServerHandle): Promise<{ first: number[]; trust: number[]; next: number[] }> {
  const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  const first: number[] = [];
  const trust: number[] = [];
  const next: number[] = [];
  try {
    for (let round = 0; round < PAGE_LOADS; round++) {
      const context = await browser.newContext();
      const page = await context.newPage();
      // Timed by the page's own clock, from the start of the navigation (as browsers' own metrics
      // are): what playwright's round trips and the new renderer process cost is not the page's.
      await page.goto(`${server.baseUrl}/#/r/bench/app`, { waitUntil: 'commit' });
      // Functions, not strings: the page's CSP forbids the eval a string would need. (No named
      // functions inside: the transpiler would wrap them in a helper the page does not have.)
      const usable = await page.waitForFunction(
        () =>
          document.querySelector('tr[data-tag="v0024"]') &&
          [...document.querySelectorAll('button')].some((b) => b.textContent === 'Next page' && !b.disabled)
            ? performance.now()
            : 0,
        undefined,
        { polling: 'raf', timeout: 30_000 },
      );
      first.push(await usable.jsonValue());
      const judged = await page.waitForFunction(
        () => (document.querySelector('tr[data-tag="v0024"] [data-testid="gate"]') ? performance.now() : 0),
        undefined,
        {
          polling: 'raf',
          timeout: 30_000,
        },
      );
      trust.push(await judged.jsonValue());
      if (process.env.BENCH_CONSOLE_TRACE) {
        const entries = await page.evaluate(() =>
          [...performance.getEntriesByType('navigation'), ...performance.getEntriesByType('resource')].map(
            (e) =>
              [
                e.name.replace(location.origin, ''),
                Math.round(e.startTime),
                Math.round((e as PerformanceResourceTiming).responseStart),
                Math.round((e as PerformanceResourceTiming).responseEnd),
              ] as const,
          ),
        );
        for (const [name, start, firstByte, end] of entries)
          console.log(`    ${name.slice(0, 70).padEnd(70)} start ${start} first byte ${firstByte} end ${end}`);
      }
      const clicked = await page.evaluate(() => performance.now());
      await page.getByRole('button', { name: 'Next page' }).click();
      const listed = await page.waitForFunction(() => (document.querySelector('tr[data-tag="v0049"]') ? performance.now() : 0), undefined, {
        polling: 'raf',
        timeout: 30_000,
      });
      next.push((await listed.jsonValue()) - clicked);
      await context.close();
    }
  } finally {
    await browser.close();
  }
  return { first, trust, next };
}

export async function runConsoleRows(
  resources: Resources,
  rows: ConsoleRows,
  record: (row: Row, server: ServerHandle, value: number | Error) => void,
): Promise<void> {
  const built = fileURLToPath(new URL('../dist/console/index.html', import.meta.url));
  if (!existsSync(built)) throw new Error(`${built} is missing: run \`npm run build\` first`);
  const server = await startSignet(resources);
  try {
    record(rows.firstLoad, server, await measureFirstLoad(server).catch((err: unknown) => err as Error));
    if (!existsSync(CHROMIUM)) {
      const missing = new Error(`${CHROMIUM} not found (apt-get install -y chromium)`);
      for (const row of [rows.tagPage, rows.trustShown, rows.nextPage]) record(row, server, missing);
      console.log(`bench: ${missing.message}; the console page rows are skipped`);
      return;
    }
    const started = performance.now();
    await fillRepository(server);
    console.log(
      `  ${server.label.padEnd(12)} ${TAGS} tags pushed (${SIGNED} signed) in ${((performance.now() - started) / 1000).toFixed(1)} s`,
    );
    const { first, trust, next } = await measurePages(server);
    const list = (values: number[]): string => values.map((ms) => ms.toFixed(0)).join(', ');
    console.log(
      `  ${server.label.padEnd(12)} first page: ${list(first)} ms; gate decisions: ${list(trust)} ms; next page: ${list(next)} ms`,
    );
    record(rows.tagPage, server, median(first));
    record(rows.trustShown, server, median(trust));
    record(rows.nextPage, server, median(next));
  } catch (err) {
    const error = err instanceof Error ? err : new Error(String(err));
    console.log(`bench: console rows failed: ${error.message}`);
    for (const row of [rows.tagPage, rows.trustShown, rows.nextPage]) if (!row.figures.has(server.label)) record(row, server, error);
  } finally {
    await server.stop();
  }
}
