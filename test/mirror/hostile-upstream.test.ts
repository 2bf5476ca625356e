// A mirror project in front of a hostile upstream (a small HTTP server of the test's own), as an
// adversarial tester ran it: a blob that streams without end (or announces a TiB) fills no disk,
// whether a client asked for it by digest or the mirror copies a cosign `.sig` whose layer says
// 100 bytes; a tag list of endless pages does not hold the heap; bytes that are not their digest
// are the upstream's fault, logged once at warn, not at error per client cut off.
import { createHash } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import anyTest, { type ExecutionContext, type TestFn } from 'ava';
import { createUpstream } from '../../mirror/upstream.js';
import type { MirrorRunReport } from '../../mirror/mirror-run.js';
import { captureLog, type CapturedLog } from '../helpers/log-capture.js';
import { listenOnLoopback } from '../helpers/loopback-server.js';
import { createClient } from '../helpers/oci-client.js';
import { blobOf, imageOf, OCI_INDEX, OCI_LAYER, type Blob, type Image } from '../helpers/oci-layout.js';
import { startTestRegistry, type TestRegistry } from '../helpers/registry.js';
import { until, withinSeconds } from '../helpers/wait.js';

const sha = (data: Buffer | string): string => `sha256:${createHash('sha256').update(data).digest('hex')}`;

/** A 32 MiB blob the hostile upstream sends in `big` mode. */
const BIG = blobOf(Buffer.alloc(32 * 1024 * 1024, 9), OCI_LAYER);

/** A 4 MiB blob the hostile upstream sends slowly in `paced` mode. */
const PACED = blobOf(Buffer.alloc(4 * 1024 * 1024, 5), OCI_LAYER);

/** A layer digest the hostile upstream answers with bytes without end. */
const ENDLESS = `sha256:${'ab'.repeat(32)}`;

interface Hostile {
  url: string;
  /** A valid image (its blobs are served), tagged v1 in every repository. */
  image: Image;
  /** Endless blob bodies: bytes sent so far, and whether the connection closed. */
  streams: { sent: number; closed: boolean }[];
  /** Tag list pages served. */
  pages: number;
  /** Manifest requests answered, by repository. */
  manifestRequests: Map<string, number>;
  close(): Promise<void>;
}

/**
 * The repository's first segment says how it misbehaves: `endless` (blob GETs of any digest stream
 * without Content-Length, without end), `huge` (the same, announcing 1 TiB), `sigbomb` (every
 * cosign `.sig` tag is a manifest whose one layer says 100 bytes and streams without end),
 * `sigtrickle` (the same layer, its 100 bytes sent one a second), `sigsilent` (the same
 * layer, never answered), `siglong` (the same layer, announced as 101 bytes), `big` (blob BIG, after 500 ms, at once), `slow` (any blob announces 1 MiB and sends a byte a second), `paced` (blob PACED: its
 * headers, 800 ms, then 256 KiB every 50 ms), `liar`
 * (any blob is the same wrong bytes), `bigtags` (tag list pages of `tagsPerPage` tags, each with a
 * next link), `deep` (tag `deep`: a chain of 40 indexes, each listing the next, the image at the
 * bottom), `wide` (tag `wide`: an index of 300 distinct image manifests).
 */
async function startHostile(tagsPerPage = 1000): Promise<Hostile> {
  const layer = blobOf(Buffer.from('hello layer bytes\n'.repeat(10)), OCI_LAYER);
  const image = imageOf({ architecture: 'amd64', os: 'linux', rootfs: { type: 'layers', diff_ids: [] } }, [layer], {
    os: 'linux',
    architecture: 'amd64',
  });
  const sigImage = imageOf({}, [{ ...layer, digest: ENDLESS, size: 100 }], { os: 'linux', architecture: 'amd64' });
  const sig = sigImage.manifest;
  const blobs = new Map([image.config, ...image.layers, sigImage.config].map((b) => [b.digest, b.data]));
  const hostile: Hostile = { url: '', image, streams: [], pages: 0, manifestRequests: new Map(), close: async () => undefined };
  const indexOf = (children: Blob[]): Blob =>
    blobOf(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: OCI_INDEX,
          manifests: children.map((c) => ({ mediaType: c.mediaType, digest: c.digest, size: c.size, platform: image.platform })),
        }),
      ),
      OCI_INDEX,
    );
  /** Manifests the hostile modes serve, by digest; their tags apart. */
  const extra = new Map<string, Blob>();
  let deep: Blob = image.manifest;
  for (let level = 0; level < 40; level++) {
    deep = indexOf([deep]);
    extra.set(deep.digest, deep);
  }
  const platforms = Array.from(
    { length: 300 },
    (_, i) =>
      imageOf({ architecture: 'amd64', os: 'linux', n: i, rootfs: { type: 'layers', diff_ids: [] } }, [layer], image.platform).manifest,
  );
  for (const m of platforms) extra.set(m.digest, m);
  const wide = indexOf(platforms);
  extra.set(wide.digest, wide);
  const endless = (res: http.ServerResponse, length?: number): void => {
    const stream = { sent: 0, closed: false };
    hostile.streams.push(stream);
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', ...(length ? { 'Content-Length': length } : {}) });
    const chunk = Buffer.alloc(256 * 1024, 7);
    const pump = (): void => {
      while (!stream.closed && res.write(chunk)) stream.sent += chunk.length;
    };
    res.on('drain', pump);
    res.on('close', () => (stream.closed = true));
    pump();
  };
  const trickle = (res: http.ServerResponse, length = 100): void => {
    const stream = { sent: 0, closed: false };
    hostile.streams.push(stream);
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': length });
    const timer = setInterval(() => {
      stream.sent += 1;
      res.write(Buffer.from([7]));
    }, 1000);
    res.on('close', () => {
      stream.closed = true;
      clearInterval(timer);
    });
  };
  const paced = (res: http.ServerResponse): void => {
    hostile.streams.push({ sent: 0, closed: false });
    res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': PACED.size });
    let sent = 0;
    let timer: NodeJS.Timeout | undefined;
    const next = (): void => {
      res.write(PACED.data.subarray(sent, sent + 256 * 1024));
      sent += 256 * 1024;
      if (sent >= PACED.size) res.end();
      else timer = setTimeout(next, 50);
    };
    timer = setTimeout(next, 800);
    res.on('close', () => clearTimeout(timer));
  };
  const server = http.createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    if (url.pathname === '/v2/') return void res.end('{}');
    const m = /^\/v2\/(.+)\/(manifests|blobs|tags)\/(.+)$/.exec(url.pathname);
    if (!m) return void res.writeHead(404).end();
    const [, repository, kind, reference] = m as unknown as [string, string, string, string];
    const mode = repository.split('/')[0];
    if (kind === 'tags') {
      if (mode !== 'bigtags') return void res.end(JSON.stringify({ name: repository, tags: ['v1'] }));
      const page = Number(url.searchParams.get('page') ?? 0);
      hostile.pages += 1;
      const tags = Array.from({ length: tagsPerPage }, (_, i) => `p${page}-${String(i).padStart(6, '0')}`.padEnd(100, 'x'));
      res.writeHead(200, {
        'Content-Type': 'application/json',
        Link: `</v2/${repository}/tags/list?n=1000&page=${page + 1}>; rel="next"`,
      });
      return void res.end(JSON.stringify({ name: repository, tags }));
    }
    if (kind === 'manifests') {
      hostile.manifestRequests.set(repository, (hostile.manifestRequests.get(repository) ?? 0) + 1);
      const served =
        reference === 'v1' || reference === image.manifest.digest
          ? image.manifest
          : ['sigbomb', 'sigtrickle', 'sigsilent', 'siglong'].includes(mode ?? '') && reference.endsWith('.sig')
            ? sig
            : mode === 'deep' && reference === 'deep'
              ? deep
              : mode === 'wide' && reference === 'wide'
                ? wide
                : extra.get(reference);
      if (!served) return void res.writeHead(404).end();
      const body = served.data;
      res.writeHead(200, { 'Content-Type': served.mediaType, 'Docker-Content-Digest': sha(body), 'Content-Length': body.length });
      return void res.end(req.method === 'HEAD' ? undefined : body);
    }
    if (mode === 'endless' || (mode === 'sigbomb' && reference === ENDLESS)) return endless(res);
    if (mode === 'sigtrickle' && reference === ENDLESS) return trickle(res);
    if (mode === 'sigsilent' && reference === ENDLESS) return;
    if (mode === 'siglong' && reference === ENDLESS) return void res.writeHead(200, { 'Content-Length': 101 }).end(Buffer.alloc(101, 7));
    if (mode === 'slow') return trickle(res, 1024 * 1024);
    if (mode === 'paced' && reference === PACED.digest) return paced(res);
    if (mode === 'big' && reference === BIG.digest) {
      res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': BIG.size });
      const timer = setTimeout(() => res.end(BIG.data), 500);
      res.on('close', () => clearTimeout(timer));
      return;
    }
    if (mode === 'huge') return endless(res, 1024 ** 4);
    const data = mode === 'liar' ? layer.data : blobs.get(reference);
    if (!data) return void res.writeHead(404).end();
    res.writeHead(200, { 'Content-Length': data.length });
    res.end(req.method === 'HEAD' ? undefined : data);
  });
  Object.assign(hostile, await listenOnLoopback(server));
  return hostile;
}

interface Context {
  signet: TestRegistry;
  logs: CapturedLog;
}
const test = anyTest as TestFn<Context>;
type T = ExecutionContext<Context>;

test.before(async (t) => {
  t.context.logs = captureLog('info');
  t.context.signet = await startTestRegistry({
    env: { REGISTRY_PROXY_TIMEOUT: '5', REGISTRY_PROXY_MAXBLOBSIZE: String(64 * 1024 * 1024) },
    log: t.context.logs.log,
  });
});
test.after.always(async (t) => {
  await t.context.signet?.close();
});

let projects = 0;
/** A public mirror project of the hostile upstream, with a quota when given. */
async function mirrorOf(t: T, hostile: Hostile, quotaBytes?: number): Promise<string> {
  const name = `hostile${++projects}`;
  const res = await fetch(`${t.context.signet.url}/api/v1/projects`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ name, public: true, mirror: { upstream: hostile.url } }),
  });
  t.is(res.status, 201, await res.clone().text());
  if (quotaBytes !== undefined) {
    const set = await fetch(`${t.context.signet.url}/api/v1/projects/${name}`, {
      method: 'PATCH',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ quotaBytes }),
    });
    t.is(set.status, 200, await set.clone().text());
  }
  return name;
}

/** A GET's status (0: no answer) and how many body bytes arrived before it ended, broke or `seconds` passed. */
async function pull(url: string, seconds = 20): Promise<{ status: number; bytes: number; complete: boolean; body: string }> {
  const res = await fetch(url, { signal: AbortSignal.timeout(seconds * 1000) }).catch(() => undefined);
  if (!res) return { status: 0, bytes: 0, complete: false, body: '' };
  let bytes = 0;
  const chunks: Buffer[] = [];
  try {
    for await (const chunk of res.body as AsyncIterable<Uint8Array>) {
      bytes += chunk.length;
      if (chunks.length < 4) chunks.push(Buffer.from(chunk));
    }
    return { status: res.status, bytes, complete: true, body: Buffer.concat(chunks).toString() };
  } catch {
    return { status: res.status, bytes, complete: false, body: Buffer.concat(chunks).toString() };
  }
}

test.serial('a blob streamed without end is cut at what is left of the quota, and nothing of it is stored', async (t) => {
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  const project = await mirrorOf(t, hostile, 4 * 1024 * 1024);
  const got = await pull(`${t.context.signet.url}/v2/${project}/endless/app/blobs/${ENDLESS}`);
  t.false(got.complete && got.status === 200, `${got.status}, ${got.bytes} bytes`);
  t.true(got.bytes <= 4 * 1024 * 1024, `${got.bytes} bytes sent to the client`);
  // The registry stopped reading: the upstream's connection is closed, a few MiB past the quota at most.
  t.true(await until(() => hostile.streams.every((s) => s.closed), 15_000), JSON.stringify(hostile.streams));
  t.true(hostile.streams[0]!.sent < 64 * 1024 * 1024, `${hostile.streams[0]!.sent} bytes sent by the upstream`);
  t.is(await t.context.signet.registry.deps.metadata.blobs.find(`${project}/endless/app`, ENDLESS), undefined);
});

test.serial('a blob announcing more than the mirror blob limit is refused before a byte is read', async (t) => {
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  const project = await mirrorOf(t, hostile);
  const got = await pull(`${t.context.signet.url}/v2/${project}/huge/app/blobs/${ENDLESS}`);
  t.is(got.status, 502, `${got.bytes} bytes`);
  const body = JSON.parse(got.body) as { errors: { code: string; message: string }[] };
  t.is(body.errors[0]?.code, 'UPSTREAM_FAILED');
  t.regex(
    body.errors[0]?.message ?? '',
    /announced 1099511627776 bytes for blob sha256:abab.*, more than the 67108864 bytes this registry fetches/,
  );
  t.true(await until(() => hostile.streams.every((s) => s.closed), 15_000));
});

test.serial('a cosign .sig whose layer says 100 bytes but streams without end is cut there; the pull is answered', async (t) => {
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  const project = await mirrorOf(t, hostile);
  const res = await withinSeconds(20, createClient(t.context.signet.url).getManifest(`${project}/sigbomb/app`, 'v1'));
  t.is(res.status, 200);
  t.is(res.headers.get('docker-content-digest'), hostile.image.manifest.digest);
  t.true(hostile.streams.length >= 1, 'the .sig layer was asked for');
  t.true(await until(() => hostile.streams.every((s) => s.closed), 15_000), JSON.stringify(hostile.streams));
  const { metadata } = t.context.signet.registry.deps;
  t.is(await metadata.blobs.find(`${project}/sigbomb/app`, ENDLESS), undefined);
  const sigTag = `${hostile.image.manifest.digest.replace(':', '-')}.sig`;
  t.is(await metadata.tags.find(`${project}/sigbomb/app`, sigTag), undefined, 'the .sig was not copied');
  t.true(
    t.context.logs
      .withMessage('could not copy the upstream cosign signature')
      .some((l) => /more than the 100 bytes/.test(String(l.reason))),
  );
});

/** A registry whose upstream requests wait 2 s for each answer or byte, with a public mirror project `quick` of the hostile upstream. */
async function quickTimeoutMirror(t: T, hostile: Hostile): Promise<TestRegistry> {
  const signet = await startTestRegistry({ env: { REGISTRY_PROXY_TIMEOUT: '2' }, log: t.context.logs.log });
  t.teardown(() => signet.close());
  const res = await fetch(`${signet.url}/api/v1/projects`, {
    method: 'POST',
    body: JSON.stringify({ name: 'quick', public: true, mirror: { upstream: hostile.url } }),
  });
  t.is(res.status, 201);
  return signet;
}

test.serial('a cosign .sig whose layer trickles in a byte a second holds a pull of its tag no longer than the copy deadline', async (t) => {
  // REGISTRY_PROXY_TIMEOUT bounds each wait for a byte, which a trickle never reaches; copying a
  // signature artifact gets four of them in all (8 s here), and the manifest is served without it.
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  const signet = await quickTimeoutMirror(t, hostile);
  const started = Date.now();
  const pull = await withinSeconds(20, createClient(signet.url).getManifest('quick/sigtrickle/app', 'v1'));
  t.is(pull.status, 200);
  t.is(pull.headers.get('docker-content-digest'), hostile.image.manifest.digest);
  t.true(Date.now() - started >= 7500, 'it waited for the signature first');
  t.true(hostile.streams.length >= 1, 'the .sig layer was asked for');
  t.true(
    t.context.logs.withMessage('could not copy the upstream cosign signature').some((l) => /took more than 8 s/.test(String(l.reason))),
  );
});

test.serial('a cosign .sig whose layer is never answered costs the pull one timeout, and the registry lives on', async (t) => {
  // Its fetch failed before a byte, with nobody but the copy waiting on it: an unhandled
  // rejection, which ends a node process (the registry's, in production).
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  const signet = await quickTimeoutMirror(t, hostile);
  const client = createClient(signet.url);
  const pull = await withinSeconds(20, client.getManifest('quick/sigsilent/app', 'v1'));
  t.is(pull.status, 200);
  t.true(
    t.context.logs.withMessage('could not copy the upstream cosign signature').some((l) => /no answer within 2 s/.test(String(l.reason))),
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.is((await client.getManifest('quick/sigsilent/app', 'v1')).status, 200, 'still serving');
});

test.serial('a cosign .sig whose layer is announced longer than its descriptor says is left out, and the registry lives on', async (t) => {
  // The refused body was destroyed unread, and undici's body then emits an 'error' nobody
  // listened to: the process ended on an anonymous pull (adversarial testing).
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  const project = await mirrorOf(t, hostile);
  const client = createClient(t.context.signet.url);
  const pull = await withinSeconds(20, client.getManifest(`${project}/siglong/app`, 'v1'));
  t.is(pull.status, 200);
  t.true(
    t.context.logs.withMessage('could not copy the upstream cosign signature').some((l) => /announced 101 bytes/.test(String(l.reason))),
  );
  await new Promise((resolve) => setTimeout(resolve, 200));
  t.is((await client.getManifest(`${project}/siglong/app`, 'v1')).status, 200, 'still serving');
});

test.serial('a client that never reads is cut from a shared fetch after the proxy timeout, and the others get the blob', async (t) => {
  // The fetch went at the pace of its slowest client: one that never read held a cold blob for
  // every pull, those waiting for it to be stored included (adversarial testing).
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  const signet = await quickTimeoutMirror(t, hostile);
  const path = `/v2/quick/big/app/blobs/${BIG.digest}`;
  const { port } = new URL(signet.url);
  const idle = net.connect(Number(port), '127.0.0.1');
  t.teardown(() => idle.destroy());
  idle.pause();
  idle.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`);
  await new Promise((resolve) => setTimeout(resolve, 150));
  const res = await withinSeconds(20, fetch(`${signet.url}${path}`));
  t.is(res.status, 200);
  const body = Buffer.from(await withinSeconds(20, res.arrayBuffer()));
  t.is(body.length, BIG.size);
  t.true(body.equals(BIG.data));
});

test.serial('blob fetches asked for by pipelined requests stop when their connection closes', async (t) => {
  // Answers to pipelined requests wait for the ones before them, and closed with the socket only
  // when their turn came: 19 of 20 such fetches went on (adversarial testing).
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  const project = await mirrorOf(t, hostile);
  const { port } = new URL(t.context.signet.url);
  const socket = net.connect(Number(port), '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  const pulls = 5;
  socket.write(
    Array.from(
      { length: pulls },
      (_, i) => `GET /v2/${project}/slow/r${i}/blobs/sha256:${'ef'.repeat(32)} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\n\r\n`,
    ).join(''),
  );
  t.true(await until(() => hostile.streams.length === pulls, 10_000), 'each pull started a fetch of its own');
  socket.destroy();
  t.true(await until(() => hostile.streams.every((s) => s.closed), 8_000), JSON.stringify(hostile.streams));
});

test.serial('a blob fetch stops when every pull that asked for it has gone, and a later pull starts its own', async (t) => {
  // Kept going for the cache, fetches of blobs an upstream trickled outlived their clients by days,
  // two file descriptors each, until the registry ran out of them (adversarial testing).
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  const project = await mirrorOf(t, hostile);
  const url = `${t.context.signet.url}/v2/${project}/slow/app/blobs/sha256:${'cd'.repeat(32)}`;
  const leave = async (clients: number): Promise<void> => {
    const controllers = Array.from({ length: clients }, () => new AbortController());
    const answers = await Promise.all(controllers.map((c) => fetch(url, { signal: c.signal })));
    t.true(answers.every((a) => a.status === 200));
    if (clients > 1) {
      controllers[0]!.abort();
      await new Promise((resolve) => setTimeout(resolve, 1500));
      t.false(hostile.streams.at(-1)!.closed, 'one pull still wants it: the fetch goes on');
    }
    for (const c of controllers) c.abort();
  };
  await leave(2);
  t.is(hostile.streams.length, 1, 'the two pulls shared one fetch');
  t.true(await until(() => hostile.streams[0]!.closed, 5_000), 'the upstream connection was closed once both had gone');
  await leave(1);
  t.is(hostile.streams.length, 2, 'a later pull fetched anew rather than waiting on the stopped fetch');
  t.true(await until(() => hostile.streams[1]!.closed, 5_000));
  t.is(await t.context.signet.registry.deps.metadata.blobs.find(`${project}/slow/app`, `sha256:${'cd'.repeat(32)}`), undefined);
});

test.serial('a pull refused a download slot leaves nothing in the shared fetch that could hold it for the others', async (t) => {
  // Refused after it had joined, its unread buffer filled at 1 MiB and the fetch waited on it for
  // ever: the pull that held the slot never got the rest (adversarial testing led there).
  const signet = await startTestRegistry({ env: { REGISTRY_DOWNLOADS_MAXCONCURRENT: '1' }, log: t.context.logs.log });
  t.teardown(() => signet.close());
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  const created = await fetch(`${signet.url}/api/v1/projects`, {
    method: 'POST',
    body: JSON.stringify({ name: 'slots', public: true, mirror: { upstream: hostile.url } }),
  });
  t.is(created.status, 201);
  const url = `${signet.url}/v2/slots/paced/app/blobs/${PACED.digest}`;
  const holder = fetch(url, { signal: AbortSignal.timeout(20_000) });
  // The upstream was asked and answered its headers at once: the holder takes its slot then.
  t.true(await until(() => hostile.streams.length === 1, 10_000));
  await new Promise((resolve) => setTimeout(resolve, 300));
  const refused = await fetch(url);
  t.is(refused.status, 429, 'one download slot per caller, and the holder has it');
  await refused.body?.cancel();
  const res = await holder;
  t.is(res.status, 200);
  t.is(Buffer.from(await res.arrayBuffer()).length, PACED.size, 'the holder got the whole blob');
});

test.serial('an index nested without end, or listing hundreds of manifests, is refused before the mirror copies them', async (t) => {
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  const project = await mirrorOf(t, hostile);
  const client = createClient(t.context.signet.url);
  const { metadata } = t.context.signet.registry.deps;
  // A chain of 40 indexes: the third is refused, after three manifests fetched, none stored.
  const deep = await withinSeconds(20, client.getManifest(`${project}/deep/app`, 'deep'));
  t.is(deep.status, 502);
  const deepError = ((await deep.json()) as { errors: { code: string; message: string }[] }).errors[0]!;
  t.is(deepError.code, 'UPSTREAM_FAILED');
  t.regex(deepError.message, /is nested deeper than 2 indexes/);
  t.is(hostile.manifestRequests.get('deep/app'), 3);
  t.is(await metadata.tags.find(`${project}/deep/app`, 'deep'), undefined);
  // An index of 300 manifests: refused with only the index fetched.
  const wide = await withinSeconds(20, client.getManifest(`${project}/wide/app`, 'wide'));
  t.is(wide.status, 502);
  t.regex(
    ((await wide.json()) as { errors: { message: string }[] }).errors[0]!.message,
    /lists 300 manifests .* more than the 256 one pull fetches/,
  );
  t.is(hostile.manifestRequests.get('wide/app'), 1);
  // The same upstream's ordinary image still mirrors.
  t.is((await client.getManifest(`${project}/deep/app`, 'v1')).status, 200);
  // The upstream's fault: a warning per refused pull, naming it, with no stack trace and no error.
  const refused = t.context.logs.withMessage('upstream refused').filter((l) => String(l.reason).includes('nested deeper'));
  t.is(refused.length, 1);
  t.like(refused[0], { level: 40, upstream: hostile.url });
  t.is(refused[0]?.err, undefined);
  t.deepEqual(
    t.context.logs.withMessage('request failed').filter((l) => JSON.stringify(l).includes(hostile.url)),
    [],
  );
});

test.serial('a mirror run reads a tag list of endless pages page by page, and says where it stopped', async (t) => {
  const hostile = await startHostile(200);
  t.teardown(() => hostile.close());
  const project = await mirrorOf(t, hostile);
  const res = await fetch(`${t.context.signet.url}/api/v1/projects/${project}/mirror/run`, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ repository: 'bigtags/app', tags: 'p1-000000*' }),
  });
  t.is(res.status, 200);
  const lines = (await withinSeconds(120, res.text()))
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as { report?: MirrorRunReport });
  const report = lines.at(-1)?.report;
  t.truthy(report, JSON.stringify(lines.at(-1)));
  t.is(report!.matched, 1);
  t.regex(report!.stopped ?? '', /more than 1000 pages/);
  t.is(hostile.pages, 1000);
});

test('the upstream client keeps only the matching tags, and stops at the most it may keep', async (t) => {
  const hostile = await startHostile(1000);
  t.teardown(() => hostile.close());
  const upstream = createUpstream({ url: hostile.url, timeoutMs: 5000 });
  const listing = await upstream.tags('bigtags/app', { keep: (tag) => !tag.startsWith('p0-'), max: 2500 });
  t.is(listing.tags.length, 2500);
  t.true(listing.tags.every((tag) => !tag.startsWith('p0-')));
  t.regex(listing.stopped ?? '', /more than 2500 tags match/);
  t.is(hostile.pages, 4, 'no page read past the one that filled it');
});

test.serial("an upstream blob that does not match its digest is the upstream's fault: one warning, no error", async (t) => {
  const hostile = await startHostile();
  t.teardown(() => hostile.close());
  const project = await mirrorOf(t, hostile);
  const wrong = sha('not what the upstream sends');
  const got = await pull(`${t.context.signet.url}/v2/${project}/liar/app/blobs/${wrong}`);
  t.false(got.complete && got.status === 200, 'the client is cut off');
  t.is(await t.context.signet.registry.deps.metadata.blobs.find(`${project}/liar/app`, wrong), undefined);
  const { lines } = t.context.logs;
  const mine = (l: Record<string, unknown>): boolean => JSON.stringify(l).includes(wrong);
  t.true(await until(() => lines.some((l) => mine(l) && l.level === 40), 5000), 'a warning names the digest');
  const warning = lines.find((l) => mine(l) && l.level === 40)!;
  t.is(warning.upstream, hostile.url);
  t.deepEqual(
    lines.filter((l) => mine(l) && Number(l.level) >= 50),
    [],
    'nothing at error level',
  );
});
