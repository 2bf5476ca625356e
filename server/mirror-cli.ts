// `signet mirror run|schedule`: copies tags of an upstream repository into a mirror project
// (POST /api/v1/projects/<p>/mirror/run, with a progress bar on a terminal and plain lines
// otherwise, then a summary), and sets what scheduled mirroring copies and how often.
import type { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { ApiCallError, type Call } from './api-client.js';
import { ndjsonEvents, streamFailure } from './ndjson-stream.js';
import { parseDuration } from './config.js';
import type { MirrorProgress, MirrorRunReport } from '../mirror/mirror-run.js';

type Out = (line: string) => void;

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

/** The one-line summary of a run. */
export function summary(report: MirrorRunReport): string {
  const skipped = report.skipped.length > 0 ? ` (${report.skipped.join(', ')})` : '';
  const failed = report.failed.map((f) => `\n  failed ${f.tag}: ${f.error}`).join('');
  // A run that did not consider every matching tag says so: "nothing failed" is not "all copied".
  const stopped = report.stopped ? `\n  stopped early: ${report.stopped}` : '';
  return (
    `${report.repository}: ${report.matched} tag(s) matched; copied ${report.copied}, skipped ${report.skipped.length} already present${skipped}, ` +
    `${report.failed.length} failed; ${mib(report.bytes)} and ${report.signatures} signature(s) in ${(report.durationMs / 1000).toFixed(1)} s${stopped}${failed}`
  );
}

export function registerMirrorCommands(program: Command, client: () => Call, out: Out): void {
  const enc = encodeURIComponent;
  const mirror = program.command('mirror').description('copy from the upstream of a mirror project');
  mirror
    .command('run <project>')
    .description("copy an upstream repository's tags (with blobs and signatures) into a mirror project, skipping those present")
    .requiredOption('--repository <path>', 'the repository, as named below the upstream (ubi8/ubi)')
    .option('--tags <glob>', 'tags to copy: * any characters, ? one', '*')
    .action(async (project: string, opts: { repository: string; tags: string }) => {
      const res = await client().stream('POST', `/api/v1/projects/${enc(project)}/mirror/run`, {
        repository: opts.repository,
        tags: opts.tags,
      });
      if (!res.ok || !res.body) throw await streamFailure(res);
      const tty = process.stderr.isTTY;
      let bar: SingleBar | undefined;
      let report: MirrorRunReport | undefined;
      for await (const event of ndjsonEvents<{ progress?: MirrorProgress; report?: MirrorRunReport; error?: string }>(res.body)) {
        if (event.error) {
          bar?.stop();
          throw new ApiCallError(500, `mirroring failed: ${event.error}`);
        }
        if (event.report) report = event.report;
        const progress = event.progress;
        if (!progress) continue;
        if (tty) {
          if (!bar) {
            bar = new SingleBar({ format: `${opts.repository} [{bar}] {value}/{total} {tag}`, stream: process.stderr, hideCursor: true });
            bar.start(progress.total, 0, { tag: '' });
          }
          bar.update(progress.done, { tag: `${progress.tag}: ${progress.outcome}` });
        } else {
          process.stderr.write(
            `${progress.done}/${progress.total} ${progress.tag}: ${progress.outcome}${progress.error ? ` (${progress.error})` : ''}\n`,
          );
        }
      }
      bar?.stop();
      if (!report) throw new ApiCallError(500, 'the registry ended the run without a report');
      out(summary(report));
      if (report.failed.length > 0) process.exitCode = 1;
    });
  mirror
    .command('schedule <project>')
    .description('what scheduled mirroring copies (--rule, repeatable) and how often (--every; 0 stops it)')
    .option(
      '--rule <repository=glob>',
      'a repository and a tag glob, as ubi8/ubi=8.*',
      (value: string, all: string[]) => [...all, value],
      [],
    )
    .requiredOption('--every <duration>', 'interval: seconds, or 30m, 6h, 1h30m; 0 turns scheduling off')
    .action(async (project: string, opts: { rule: string[]; every: string }) => {
      const seconds = parseDuration(opts.every);
      if (seconds === undefined) throw new ApiCallError(0, `--every ${opts.every} is not a duration: write seconds, or 30m, 6h, 1h30m`);
      const rules = opts.rule.map((rule) => {
        const eq = rule.indexOf('=');
        if (eq <= 0 || eq === rule.length - 1) throw new ApiCallError(0, `--rule ${rule}: write repository=glob, as ubi8/ubi=8.*`);
        return { repository: rule.slice(0, eq), tags: rule.slice(eq + 1) };
      });
      if (seconds > 0 && rules.length === 0) throw new ApiCallError(0, 'a schedule needs at least one --rule repository=glob');
      await client()('PATCH', `/api/v1/projects/${enc(project)}`, { mirror: { sync: { rules, intervalSeconds: Math.round(seconds) } } });
      out(
        seconds > 0
          ? `${project}: mirroring ${rules.map((r) => `${r.repository}:${r.tags}`).join(', ')} every ${opts.every}`
          : `${project}: scheduled mirroring off`,
      );
    });
}
