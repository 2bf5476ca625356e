import { useState } from 'preact/hooks';
import { enc, getJson } from '../api.js';
import { href } from '../router.js';
import { Loading, Problem, useLoad } from '../ui.js';
import type { ProjectDetail } from './project.js';

const PAGE = 50;

export function RepositoriesTab({ project }: { project: ProjectDetail }) {
  const [query, setQuery] = useState('');
  const [cursor, setCursor] = useState<string[]>([]);
  const last = cursor[cursor.length - 1];
  const list = useLoad(
    () =>
      getJson<{ repositories: { name: string }[]; total: number; next?: string }>(
        `/projects/${enc(project.name)}/repositories?n=${PAGE}${query ? `&q=${enc(query)}` : ''}${last ? `&last=${enc(last)}` : ''}`,
      ),
    [project.name, query, last],
  );
  return (
    <section aria-label="Repositories">
      <h2>Repositories</h2>
      <form class="inline" role="search" onSubmit={(e) => e.preventDefault()}>
        <label for="repo-search">Search repositories</label>
        <input
          id="repo-search"
          type="search"
          value={query}
          onInput={(e) => {
            setQuery(e.currentTarget.value);
            setCursor([]);
          }}
        />
      </form>
      <Loading when={list.loading && !list.data} />
      <Problem message={list.error} />
      {list.data && (
        <>
          <p class="muted" aria-live="polite">
            {list.data.total} repositor{list.data.total === 1 ? 'y' : 'ies'}
            {query ? ` matching “${query}”` : ''}
          </p>
          <ul>
            {list.data.repositories.map((r) => (
              <li key={r.name}>
                <a href={href.repository(project.name, r.name.slice(project.name.length + 1))}>{r.name}</a>
              </li>
            ))}
          </ul>
          <div class="pager">
            <button type="button" class="secondary" disabled={cursor.length === 0} onClick={() => setCursor(cursor.slice(0, -1))}>
              Previous page
            </button>
            <button
              type="button"
              class="secondary"
              disabled={!list.data.next}
              onClick={() => list.data?.next && setCursor([...cursor, list.data.next])}
            >
              Next page
            </button>
          </div>
        </>
      )}
    </section>
  );
}
