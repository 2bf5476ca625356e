import { useState } from 'preact/hooks';
import { enc, getJson } from '../api.js';
import { formatDate, Loading, Problem, useLoad } from '../ui.js';
import type { ProjectDetail } from './project.js';

interface Entry {
  id: number;
  at: string;
  actor?: string;
  action: string;
  detail: Record<string, unknown>;
}

export function AuditTab({ project }: { project: ProjectDetail }) {
  const [cursor, setCursor] = useState<number[]>([]);
  const before = cursor[cursor.length - 1];
  const page = useLoad(
    () => getJson<{ entries: Entry[]; next?: number }>(`/projects/${enc(project.name)}/audit?n=50${before ? `&before=${before}` : ''}`),
    [project.name, before],
  );
  return (
    <section aria-label="Audit log">
      <h2>Audit log</h2>
      <Loading when={page.loading && !page.data} />
      <Problem message={page.error} />
      {page.data && (
        <div class="table-wrap">
          <table>
            <thead>
              <tr>
                <th scope="col">When</th>
                <th scope="col">Who</th>
                <th scope="col">What</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {page.data.entries.map((e) => (
                <tr key={e.id}>
                  <td>{formatDate(e.at)}</td>
                  <td>{e.actor ?? '(anonymous)'}</td>
                  <td>{e.action}</td>
                  <td>
                    <code>{JSON.stringify(e.detail)}</code>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      <div class="pager">
        <button type="button" class="secondary" disabled={cursor.length === 0} onClick={() => setCursor(cursor.slice(0, -1))}>
          Newer
        </button>
        <button
          type="button"
          class="secondary"
          disabled={!page.data?.next}
          onClick={() => page.data?.next && setCursor([...cursor, page.data.next])}
        >
          Older
        </button>
      </div>
    </section>
  );
}
