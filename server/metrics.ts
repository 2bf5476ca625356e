// Prometheus metrics. One prom-client Registry per registry instance (tests run several in one
// process, and a module-level default registry would mix them), handed to whatever counts through
// RegistryDeps. Labels are bounded: `route` is the name from the routes table (never the raw path),
// `method` one of the HTTP methods the API uses, `status` the status code.
import type http from 'node:http';
import { createRequire } from 'node:module';
import type { Readable } from 'node:stream';
import type * as PromClient from 'prom-client';
import type { Counter, Gauge, Histogram, Registry } from 'prom-client';

// prom-client's index loads its default metrics, and with them @opentelemetry/api (52 files, for
// exemplars of process CPU): 45 ms of the ~300 ms of imports before a restarted registry answers
// (issue 22), against 5 ms for the four classes counted with here, which its own files export.
// The default metrics (process CPU and memory, event loop, GC) load with the first scrape.
const require = createRequire(import.meta.url);
const prom = {
  Registry: require('prom-client/lib/registry') as typeof PromClient.Registry,
  Counter: require('prom-client/lib/counter') as typeof PromClient.Counter,
  Gauge: require('prom-client/lib/gauge') as typeof PromClient.Gauge,
  Histogram: require('prom-client/lib/histogram') as typeof PromClient.Histogram,
};
/** Registers whose default metrics are still to be added, at their first scrape. */
const defaultsDue = new WeakSet<Registry>();

export interface Metrics {
  /** What /metrics serves. */
  register: Registry;
  /** Requests by route, method and status, and their durations (observeRequest). */
  requests: RequestTally;
  blobBytesReceived: Counter;
  blobBytesSent: Counter;
  /** Upload requests streaming blob data right now. */
  uploadsInProgress: Gauge;
  downloadsInProgress: Gauge;
  gateDecisions: Counter<'outcome'>;
  gateVerifications: Counter<'format'>;
  /** bcrypt checks of presented passwords (credentials not remembered from an earlier request). */
  passwordChecks: Counter;
  gcRuns: Counter;
  gcBlobsRemoved: Counter;
  gcBytesRemoved: Counter;
  /** 1 while the database, the storage or the change notifications answer, 0 during an outage. */
  dependencyUp: Gauge<'dependency'>;
}

const METHODS = new Set(['GET', 'HEAD', 'PUT', 'POST', 'PATCH', 'DELETE', 'OPTIONS']);

export function createMetrics(options: { defaultMetrics?: boolean } = {}): Metrics {
  const register = new prom.Registry();
  if (options.defaultMetrics !== false) defaultsDue.add(register);
  const registers = [register];
  return {
    register,
    requests: createRequestTally(registers),
    blobBytesReceived: new prom.Counter({
      name: 'signet_blob_bytes_received_total',
      help: 'Blob bytes received in uploads and stored as upload chunks',
      registers,
    }),
    blobBytesSent: new prom.Counter({ name: 'signet_blob_bytes_sent_total', help: 'Blob bytes sent in downloads', registers }),
    uploadsInProgress: new prom.Gauge({
      name: 'signet_uploads_in_progress',
      help: 'Upload requests streaming blob data into this process right now',
      registers,
    }),
    downloadsInProgress: new prom.Gauge({
      name: 'signet_downloads_in_progress',
      help: 'Blob GETs whose body this process is sending right now',
      registers,
    }),
    gateDecisions: new prom.Counter({
      name: 'signet_pull_gate_decisions_total',
      help: 'Manifest pulls judged by the signed-only gate, by outcome (allowed, refused)',
      labelNames: ['outcome'] as const,
      registers,
    }),
    gateVerifications: new prom.Counter({
      name: 'signet_pull_gate_signature_verifications_total',
      help: 'Signatures the pull gate checked against a trust set, by format (simple, cosign); a signature checked within the cache TTL is not checked again',
      labelNames: ['format'] as const,
      registers,
    }),
    passwordChecks: new prom.Counter({
      name: 'signet_auth_password_checks_total',
      help: 'Passwords checked with bcrypt: credentials not remembered from an earlier request (requests presenting the same ones at once share a check)',
      registers,
    }),
    gcRuns: new prom.Counter({ name: 'signet_gc_runs_total', help: 'Garbage collection runs', registers }),
    gcBlobsRemoved: new prom.Counter({ name: 'signet_gc_blobs_removed_total', help: 'Blobs removed by garbage collection', registers }),
    gcBytesRemoved: new prom.Counter({ name: 'signet_gc_bytes_removed_total', help: 'Bytes removed by garbage collection', registers }),
    dependencyUp: new prom.Gauge({
      name: 'signet_dependency_up',
      help: 'Whether the last operation on a dependency (database, storage, notifications) found it answering: 1, or 0 during an outage',
      labelNames: ['dependency'] as const,
      registers,
    }),
  };
}

/** Counts one finished (or abandoned) request. */
export function observeRequest(metrics: Metrics, route: string, method: string, status: number, seconds: number): void {
  metrics.requests.observe(route, METHODS.has(method) ? method : 'other', status, seconds);
}

const DURATION_NAME = 'signet_http_request_duration_seconds';
const DURATION_HELP = 'Time from request to the last byte of the response, by route name and method';
const DURATION_BUCKETS: readonly number[] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300];

/** One series of the duration histogram: counts per bucket (the last one +Inf only), not cumulative. */
interface DurationSeries {
  labels: { route: string; method: string };
  buckets: Float64Array;
  sum: number;
  count: number;
  /** Requests of this route and method by status, not yet added to the counter. */
  statuses: Map<number, number>;
}

/**
 * Every request's count and duration, kept in plain numbers per route and method and handed to
 * prom-client when scraped. prom-client hashes its label object on every `inc` and `observe`
 * (sorting and joining the label values, checking each name): per request that was 4-6 % of the
 * server's CPU on a manifest GET by tag under load, the hottest path there is (bench/ row 20; in a
 * `--cpu-prof` profile, `observeRequest` 4.3 % of all samples). Here a request costs one map
 * lookup by route and method, a scan of 15 bucket bounds and one by status. Labels stay bounded as
 * before: route names from the routes table, the API's methods, status codes.
 */
export interface RequestTally {
  observe(route: string, method: string, status: number, seconds: number): void;
}

function createRequestTally(registers: Registry[]): RequestTally {
  const series = new Map<string, DurationSeries>();
  // Both register themselves with `registers`; the tally is what the server holds.
  new prom.Counter({
    name: 'signet_http_requests_total',
    help: 'HTTP requests answered, by route name, method and status (499: the client went away first)',
    labelNames: ['route', 'method', 'status'] as const,
    registers,
    // Called by prom-client before each scrape: what came since the last one goes in.
    collect() {
      for (const s of series.values()) {
        for (const [status, count] of s.statuses) {
          if (count > 0) this.inc({ ...s.labels, status: String(status) }, count);
          s.statuses.set(status, 0);
        }
      }
    },
  });
  new DurationHistogram(
    {
      name: DURATION_NAME,
      help: DURATION_HELP,
      labelNames: ['route', 'method'] as const,
      buckets: [...DURATION_BUCKETS],
      registers,
    },
    series,
  );
  return {
    observe(route, method, status, seconds) {
      const key = `${route} ${method}`;
      let s = series.get(key);
      if (s === undefined) {
        s = { labels: { route, method }, buckets: new Float64Array(DURATION_BUCKETS.length + 1), sum: 0, count: 0, statuses: new Map() };
        series.set(key, s);
      }
      // Prometheus buckets hold the values at most their bound (`le`).
      let bucket = 0;
      while (bucket < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[bucket]!) bucket++;
      s.buckets[bucket]!++;
      s.sum += seconds;
      s.count++;
      s.statuses.set(status, (s.statuses.get(status) ?? 0) + 1);
    },
  };
}

type HistogramValues = Awaited<ReturnType<Histogram['get']>>;

/**
 * prom-client's Histogram, its values read from the tally's series rather than from its own
 * observations (none are made): the registry reads a histogram through `getForPromString` for the
 * text format and `get` for JSON, so both are answered here, with the samples prom-client writes
 * (`_bucket` cumulative with `le` first, then `_sum` and `_count`). test/server/metrics.test.ts
 * checks the text.
 */
class DurationHistogram extends prom.Histogram<'route' | 'method'> {
  private readonly series: Map<string, DurationSeries>;

  constructor(configuration: PromClient.HistogramConfiguration<'route' | 'method'>, series: Map<string, DurationSeries>) {
    super(configuration);
    this.series = series;
  }

  override async get(): Promise<HistogramValues> {
    return this.getForPromString();
  }

  async getForPromString(): Promise<HistogramValues> {
    const name = DURATION_NAME;
    const values: HistogramValues['values'] = [];
    for (const s of this.series.values()) {
      let cumulative = 0;
      DURATION_BUCKETS.forEach((le, i) => {
        cumulative += s.buckets[i]!;
        values.push({ labels: { le, ...s.labels }, value: cumulative, metricName: `${name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...s.labels }, value: s.count, metricName: `${name}_bucket` });
      values.push({ labels: { ...s.labels }, value: s.sum, metricName: `${name}_sum` });
      values.push({ labels: { ...s.labels }, value: s.count, metricName: `${name}_count` });
    }
    // prom-client's typings declare `type` an enum and a `collect` field; at run time its own
    // histograms answer the string and no `collect`, which is what the registry formats.
    return {
      name,
      help: DURATION_HELP,
      type: 'histogram' as unknown as PromClient.MetricType,
      values,
      aggregator: 'sum',
      collect: () => undefined,
    };
  }

  override reset(): void {
    // prom-client's constructor calls reset() before `series` is set: nothing to clear then.
    (this.series as Map<string, DurationSeries> | undefined)?.clear();
  }
}

/**
 * Counts the bytes of a streamed response body as they go out. The count starts when the body is
 * piped into the response ('pipe' is emitted after pipe() attached its own reader, so no data is
 * lost to an early listener) and is added once the response closes.
 */
export function countSentBytes(res: http.ServerResponse, counter: Counter): void {
  let sent = 0;
  res.once('pipe', (source: Readable) => source.on('data', (chunk: Buffer) => void (sent += chunk.length)));
  res.once('close', () => counter.inc(sent));
}

/** The text exposition of every metric, for a route or the debug listener. */
export async function renderMetrics(metrics: Metrics): Promise<{ contentType: string; body: string }> {
  if (defaultsDue.delete(metrics.register)) {
    const collectDefaultMetrics = require('prom-client/lib/defaultMetrics') as typeof PromClient.collectDefaultMetrics;
    collectDefaultMetrics({ register: metrics.register });
  }
  return { contentType: metrics.register.contentType, body: await metrics.register.metrics() };
}

/** The request listener of the debug address (REGISTRY_HTTP_DEBUG_ADDR): metrics and nothing else. */
export function createDebugListener(metrics: Metrics, path: string): http.RequestListener {
  return (req, res) => {
    const url = new URL(req.url ?? '/', 'http://debug');
    if (url.pathname !== path || (req.method !== 'GET' && req.method !== 'HEAD')) {
      res
        .writeHead(url.pathname === path ? 405 : 404, { 'Content-Type': 'text/plain' })
        .end(url.pathname === path ? 'method not allowed\n' : 'not found\n');
      return;
    }
    renderMetrics(metrics).then(
      ({ contentType, body }) => {
        res.writeHead(200, { 'Content-Type': contentType, 'Content-Length': Buffer.byteLength(body) });
        res.end(req.method === 'HEAD' ? undefined : body);
      },
      () => res.writeHead(500).end(),
    );
  };
}
