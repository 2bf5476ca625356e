// Registry administration: what this replica runs on, and garbage collection with its progress.
import { useState } from 'preact/hooks';
import { call, getJson, type SessionInfo } from '../api.js';
import { formatBytes, formatDate, Loading, Problem, useAction, useLoad } from '../ui.js';

interface Status {
  version: string;
  node: string;
  storage: Record<string, string>;
  database: string;
  readOnly: boolean;
  uptimeSeconds: number;
  outages: Record<string, { reason: string; since: string }>;
  replicas: { host: string; version: string; startedAt: string; seenAt: string }[];
}

interface Progress {
  phase?: string;
  done?: number;
  total?: number;
}

export function AdminPage({ session }: { session: SessionInfo }) {
  const status = useLoad(() => getJson<Status>('/status'), [session.user]);
  const gc = useAction();
  const [progress, setProgress] = useState<Progress>();
  const [report, setReport] = useState<Record<string, unknown>>();
  const [deleteUntagged, setDeleteUntagged] = useState(false);

  const run = (dryRun: boolean) =>
    gc.run(async () => {
      setReport(undefined);
      setProgress({ phase: 'starting' });
      const res = await call('POST', '/gc', { dryRun, deleteUntagged });
      const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
      let buffer = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buffer += value;
        let newline: number;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = JSON.parse(buffer.slice(0, newline)) as { progress?: Progress; report?: Record<string, unknown>; error?: string };
          buffer = buffer.slice(newline + 1);
          if (line.progress) setProgress(line.progress);
          if (line.report) setReport(line.report);
          if (line.error) throw new Error(line.error);
        }
      }
      setProgress(undefined);
    });

  if (!session.admin) return <Problem message="Administration is for registry administrators." />;
  return (
    <>
      <h1>Administration</h1>
      <section aria-label="Status">
        <h2>Status</h2>
        <Loading when={status.loading && !status.data} />
        <Problem message={status.error} />
        {status.data && (
          <dl>
            <dt>Version</dt>
            <dd>
              Signet {status.data.version} on Node {status.data.node}
            </dd>
            <dt>Storage</dt>
            <dd>
              {Object.entries(status.data.storage)
                .map(([k, v]) => `${k}: ${v}`)
                .join(', ')}
            </dd>
            <dt>Database</dt>
            <dd>{status.data.database}</dd>
            <dt>Mode</dt>
            <dd>{status.data.readOnly ? 'read-only (maintenance)' : 'read-write'}</dd>
            <dt>Replicas seen (last 2 minutes)</dt>
            <dd>
              <ul>
                {status.data.replicas.map((r) => (
                  <li key={`${r.host} ${r.startedAt}`}>
                    {r.host}, Signet {r.version}, up since {formatDate(r.startedAt)}
                  </li>
                ))}
              </ul>
            </dd>
            <dt>Dependencies</dt>
            <dd>
              {Object.keys(status.data.outages).length === 0
                ? 'all answering'
                : Object.entries(status.data.outages)
                    .map(([name, o]) => `${name}: ${o.reason} since ${o.since}`)
                    .join('; ')}
            </dd>
          </dl>
        )}
      </section>
      <section aria-label="Garbage collection">
        <h2>Garbage collection</h2>
        <label class="check">
          <input type="checkbox" checked={deleteUntagged} onChange={(e) => setDeleteUntagged(e.currentTarget.checked)} /> Also delete
          untagged manifests
        </label>
        <div class="pager">
          <button type="button" class="secondary" disabled={gc.busy} onClick={() => void run(true)}>
            Dry run
          </button>
          <button type="button" class="danger" disabled={gc.busy} onClick={() => void run(false)}>
            Collect garbage
          </button>
        </div>
        {progress && (
          <p aria-live="polite">
            {progress.phase ?? 'working'}
            {progress.total ? ` ${progress.done ?? 0} / ${progress.total}` : ''}
            {progress.total ? <progress value={progress.done ?? 0} max={progress.total} aria-label="Garbage collection progress" /> : null}
          </p>
        )}
        {report && (
          <div role="status">
            <p>
              {report.dryRun ? 'Dry run: would remove' : 'Removed'} {Number(report.blobsRemoved ?? 0)} blobs (
              {formatBytes(Number(report.bytesRemoved ?? 0))}).
            </p>
            <pre>{JSON.stringify(report, null, 2)}</pre>
          </div>
        )}
        <Problem message={gc.error} />
      </section>
    </>
  );
}
