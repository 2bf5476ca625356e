import { useState } from 'preact/hooks';
import { getJson, sendJson, type SessionInfo } from '../api.js';
import { href } from '../router.js';
import { formatBytes, Loading, Problem, useAction, useLoad } from '../ui.js';

export interface ProjectSummary {
  name: string;
  public: boolean;
  signedOnly: boolean;
  quotaBytes: number | null;
  repositoryCount?: number;
  usedBytes?: number;
}

export function ProjectsPage({ session }: { session: SessionInfo }) {
  const list = useLoad(() => getJson<{ projects: ProjectSummary[] }>('/projects?details=1'), [session.user]);
  const [name, setName] = useState('');
  const [isPublic, setPublic] = useState(false);
  const create = useAction();
  return (
    <>
      <h1>Projects</h1>
      {session.user === undefined && session.authEnabled && <p>You are not signed in: only public projects are listed.</p>}
      <Loading when={list.loading && !list.data} />
      <Problem message={list.error} />
      {list.data && (
        <table>
          <caption class="visually-hidden">Projects</caption>
          <thead>
            <tr>
              <th scope="col">Project</th>
              <th scope="col">Access</th>
              <th scope="col">Signed only</th>
              <th scope="col">Repositories</th>
              <th scope="col">Quota use</th>
            </tr>
          </thead>
          <tbody>
            {list.data.projects.map((p) => (
              <tr key={p.name}>
                <td>
                  <a href={href.project(p.name)}>{p.name}</a>
                </td>
                <td>{p.public ? 'public' : 'private'}</td>
                <td>{p.signedOnly ? 'yes' : 'no'}</td>
                <td>{p.repositoryCount ?? '–'}</td>
                <td>
                  {formatBytes(p.usedBytes)}
                  {p.quotaBytes !== null ? ` of ${formatBytes(p.quotaBytes)}` : ''}
                </td>
              </tr>
            ))}
            {list.data.projects.length === 0 && (
              <tr>
                <td colSpan={5}>No projects to show.</td>
              </tr>
            )}
          </tbody>
        </table>
      )}
      {session.admin && (session.user !== undefined || !session.authEnabled) && (
        <section aria-label="Create a project">
          <h2>Create a project</h2>
          <form
            class="inline"
            onSubmit={(event) => {
              event.preventDefault();
              void create.run(async () => {
                await sendJson('POST', '/projects', { name, public: isPublic });
                location.hash = href.project(name);
              });
            }}
          >
            <label for="new-project">Name</label>
            <input
              id="new-project"
              required
              pattern="[a-z0-9]+([._-][a-z0-9]+)*"
              value={name}
              onInput={(e) => setName(e.currentTarget.value)}
            />
            <label class="check">
              <input type="checkbox" checked={isPublic} onChange={(e) => setPublic(e.currentTarget.checked)} /> Public (anyone may pull)
            </label>
            <button type="submit" disabled={create.busy}>
              Create project
            </button>
          </form>
          <Problem message={create.error} />
        </section>
      )}
    </>
  );
}
