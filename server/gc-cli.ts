// `signet gc`: runs garbage collection in the registry (POST /api/v1/gc) with a progress bar on a
// terminal (plain lines otherwise) and prints the summary. Going through the server works with the
// embedded database too, which only the server process may open.
import type { Command } from 'commander';
import { SingleBar } from 'cli-progress';
import { ApiCallError, type Call } from './api-client.js';
import { ndjsonEvents, streamFailure } from './ndjson-stream.js';
import type { GcProgress, GcReport } from '../storage/gc.js';

const PHASES: Record<GcProgress['phase'], string> = {
  manifests: 'untagged manifests',
  blobs: 'unreferenced blobs',
  uploads: 'stale uploads',
  orphans: 'orphan files',
};

function mib(bytes: number): string {
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function registerGcCommand(program: Command, client: () => Call, out: (line: string) => void): void {
  program
    .command('gc')
    .description('remove blobs no manifest references (and stale uploads) while the registry keeps serving')
    .option('--dry-run', 'report what would be removed, remove nothing')
    .option('--delete-untagged', 'also remove untagged manifests nothing refers to (and their signatures)')
    .option('--grace <seconds>', 'keep anything newer than this (default: the server setting, 2 hours)')
    .action(async (opts: { dryRun?: boolean; deleteUntagged?: boolean; grace?: string }) => {
      const body = {
        ...(opts.dryRun ? { dryRun: true } : {}),
        ...(opts.deleteUntagged ? { deleteUntagged: true } : {}),
        ...(opts.grace !== undefined ? { graceSeconds: Number(opts.grace) } : {}),
      };
      const res = await client().stream('POST', '/api/v1/gc', body);
      if (!res.ok || !res.body) throw await streamFailure(res);
      const tty = process.stderr.isTTY;
      let bar: SingleBar | undefined;
      let phase: string | undefined;
      let report: GcReport | undefined;
      for await (const event of ndjsonEvents<{ progress?: GcProgress; report?: GcReport; error?: string }>(res.body)) {
        if (event.error) {
          bar?.stop();
          throw new ApiCallError(500, `garbage collection failed: ${event.error}`);
        }
        if (event.report) report = event.report;
        if (event.progress) {
          const { progress } = event;
          if (progress.phase !== phase) {
            bar?.stop();
            phase = progress.phase;
            if (tty) {
              bar = new SingleBar({
                format: `${PHASES[progress.phase].padEnd(20)} [{bar}] {value}/{total}`,
                stream: process.stderr,
                hideCursor: true,
              });
              bar.start(progress.total, 0);
            } else {
              process.stderr.write(`${PHASES[progress.phase]}: ${progress.total} to check\n`);
            }
          }
          bar?.update(progress.done);
        }
      }
      bar?.stop();
      if (!report) throw new ApiCallError(500, 'the registry ended the run without a report');
      const verb = report.dryRun ? 'would remove' : 'removed';
      out(
        `${report.dryRun ? 'dry run: ' : ''}${verb} ${report.blobsRemoved} blob(s), ${report.manifestsRemoved} manifest(s), ` +
          `${report.uploadsRemoved} stale upload(s), ${report.orphanFilesRemoved} orphan file(s): ${mib(report.bytesRemoved)} in ${(report.durationMs / 1000).toFixed(1)} s`,
      );
    });
}
