// The HTTP load generators for the fixed-duration rows; the same one drives both registries, over
// keep-alive connections. GET: wrk (C, one thread), else autocannon in this process. HEAD: wrk and
// autocannon both wait for the body a HEAD answer's Content-Length announces (wg/wrk#198) and
// time out, so ApacheBench (`ab -k -i`, C, as fast as wrk here), else bench/socket-load.ts.
import { spawn, spawnSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { createSocketLoad } from './socket-load.js';

export interface LoadSpec {
  url: string;
  method: 'GET' | 'HEAD';
  headers: Record<string, string>;
  connections: number;
  seconds: number;
}

export interface LoadResult {
  /** Requests answered 2xx/3xx. */
  ok: number;
  /** Everything else: other statuses, socket errors, timeouts. */
  failed: number;
  seconds: number;
  rps: number;
  p99Ms: number;
}

export interface LoadGenerator {
  name: string;
  run(spec: LoadSpec): Promise<LoadResult>;
}

type Track = (kill: () => void) => () => void;

/** Runs a load generator to the end; its stdout and stderr together. */
async function runTool(binary: string, args: string[], track: Track): Promise<{ code: number | null; out: string }> {
  const child = spawn(binary, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const untrack = track(() => child.kill('SIGKILL'));
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
  child.stderr.setEncoding('utf8').on('data', (s: string) => (out += s));
  const code = await new Promise<number | null>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', resolve);
  }).finally(untrack);
  return { code, out };
}

/** wrk's `done` hook prints one machine-readable line; durations are in microseconds. */
function wrkScript(method: string): string {
  return `wrk.method = "${method}"
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_RESULT %d %d %d %d %d %d %d %d\\n",
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(99)))
end
`;
}

function createWrk(binary: string, scratchDir: string, track: Track): LoadGenerator {
  return {
    name: 'wrk',
    async run(spec) {
      const script = path.join(scratchDir, `wrk-${spec.method.toLowerCase()}.lua`);
      writeFileSync(script, wrkScript(spec.method));
      const args = ['-t1', `-c${spec.connections}`, `-d${spec.seconds}s`, '--timeout', '5s', '-s', script];
      for (const [name, value] of Object.entries(spec.headers)) args.push('-H', `${name}: ${value}`);
      args.push(spec.url);
      const { code, out } = await runTool(binary, args, track);
      const match = /^BENCH_RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)$/m.exec(out);
      if (code !== 0 || !match) throw new Error(`wrk failed (exit ${code}):\n${out.trim()}`);
      const [requests, durationUs, connect, read, write, status, timeout, p99Us] = match.slice(1).map(Number);
      // wrk counts a non-2xx/3xx answer both as a request and in errors.status.
      const ok = requests! - status!;
      const seconds = durationUs! / 1e6;
      return {
        ok,
        failed: status! + connect! + read! + write! + timeout!,
        seconds,
        rps: ok / seconds,
        p99Ms: p99Us! / 1000,
      };
    },
  };
}

async function createAutocannon(): Promise<LoadGenerator> {
  const { default: autocannon } = await import('autocannon');
  return {
    name: 'autocannon',
    async run(spec) {
      const result = await autocannon({
        url: spec.url,
        method: spec.method,
        headers: spec.headers,
        connections: spec.connections,
        duration: spec.seconds,
        timeout: 5,
      });
      const ok = result['2xx'] + result['3xx'];
      return {
        ok,
        failed: result.non2xx - result['3xx'] + result.errors + result.timeouts,
        seconds: result.duration,
        rps: ok / result.duration,
        p99Ms: result.latency.p99,
      };
    },
  };
}

function createAb(binary: string, track: Track): LoadGenerator {
  return {
    name: 'ab',
    async run(spec) {
      // -t before -n: -t alone caps the run at 50,000 requests.
      const args = ['-k', '-q', '-c', String(spec.connections), '-t', String(spec.seconds), '-n', '100000000', '-s', '5'];
      if (spec.method === 'HEAD') args.push('-i');
      for (const [name, value] of Object.entries(spec.headers)) args.push('-H', `${name}: ${value}`);
      args.push(spec.url);
      const { code, out } = await runTool(binary, args, track);
      const field = (re: RegExp): number | undefined => {
        const match = re.exec(out);
        return match ? Number(match[1]) : undefined;
      };
      const complete = field(/^Complete requests:\s+(\d+)/m);
      const seconds = field(/^Time taken for tests:\s+([\d.]+) seconds/m);
      if (code !== 0 || complete === undefined || seconds === undefined) throw new Error(`ab failed (exit ${code}):\n${out.trim()}`);
      const failed = (field(/^Failed requests:\s+(\d+)/m) ?? 0) + (field(/^Non-2xx responses:\s+(\d+)/m) ?? 0);
      const ok = complete - failed;
      return { ok, failed, seconds, rps: ok / seconds, p99Ms: field(/^\s+99%\s+(\d+)/m) ?? 0 };
    },
  };
}

function runs(binary: string, args: string[], banner: RegExp): boolean {
  const probe = spawnSync(binary, args, { encoding: 'utf8' });
  return !probe.error && banner.test(`${probe.stdout}${probe.stderr}`);
}

/** ab if it runs here, else the raw-socket generator. */
export function chooseHeadGenerator(track: Track): LoadGenerator {
  if (runs('ab', ['-V'], /ApacheBench/)) return createAb('ab', track);
  process.stderr.write('bench: ab not found (apt-get install -y apache2-utils); HEAD falls back to bench/socket-load.ts\n');
  return createSocketLoad();
}

/** wrk if it runs here, else autocannon. `track` registers a kill for clean-up on interrupt. */
export async function chooseLoadGenerator(scratchDir: string, track: Track): Promise<LoadGenerator> {
  // `wrk --version` prints its banner and exits 1; a missing binary gives ENOENT.
  if (runs('wrk', ['--version'], /wrk/)) return createWrk('wrk', scratchDir, track);
  process.stderr.write('bench: wrk not found (apt-get install -y wrk); falling back to autocannon\n');
  return createAutocannon();
}
