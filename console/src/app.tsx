// The console's frame: who is signed in, the navigation, and the page the address names.
import { useEffect, useState } from 'preact/hooks';
import { getJson, sendJson, setCsrfToken, type SessionInfo } from './api.js';
import { AdminPage } from './pages/admin.js';
import { ProjectPage } from './pages/project.js';
import { ProjectsPage } from './pages/projects.js';
import { RepositoryPage } from './pages/repository.js';
import { SignInPage } from './pages/signin.js';
import { href, useRoute } from './router.js';
import { Problem } from './ui.js';

export function App() {
  const route = useRoute();
  const [session, setSession] = useState<SessionInfo>();
  const [error, setError] = useState<string>();

  const adopt = (info: SessionInfo): void => {
    setCsrfToken(info.csrfToken);
    setSession(info);
  };
  useEffect(() => {
    getJson<SessionInfo>('/session').then(adopt, (err: Error) => setError(err.message));
  }, []);

  async function signOut(): Promise<void> {
    await sendJson('DELETE', '/session');
    adopt({ authEnabled: session?.authEnabled ?? true, admin: false });
    location.hash = href.projects;
  }

  // Pages start loading their data at once, beside the session request (one round trip less before
  // a page is usable); until the session is known nobody is taken for signed in or an admin.
  const known = session !== undefined;
  const current: SessionInfo = session ?? { authEnabled: true, admin: false };
  return (
    <>
      <header class="top">
        <a class="brand" href={href.projects}>
          Signet
        </a>
        <nav aria-label="Main">
          <a href={href.projects}>Projects</a>
          {current.admin && current.user !== undefined && <a href={href.admin}>Administration</a>}
        </nav>
        <div class="who">
          {!known ? null : current.user !== undefined ? (
            <>
              <span>
                Signed in as <strong data-testid="user">{current.user}</strong>
                {current.robot && <span data-testid="robot-session"> (robot, read-only: project {current.robot.project})</span>}
              </span>
              <button type="button" onClick={() => void signOut()}>
                Sign out
              </button>
            </>
          ) : current.authEnabled ? (
            <a class="button" href={href.signin}>
              Sign in
            </a>
          ) : null}
        </div>
      </header>
      <main id="main">
        <Problem message={error} />
        {route.page === 'signin' ? (
          <SignInPage
            onSignedIn={(info) => {
              adopt(info);
              location.hash = href.projects;
            }}
          />
        ) : route.page === 'admin' ? (
          known && <AdminPage session={current} />
        ) : route.page === 'project' ? (
          <ProjectPage key={`${route.project} ${current.user ?? ''}`} session={current} project={route.project} tab={route.tab} />
        ) : route.page === 'repository' ? (
          <RepositoryPage
            key={`${route.project}/${route.repository}`}
            session={current}
            project={route.project}
            repository={route.repository}
          />
        ) : (
          known && <ProjectsPage session={current} />
        )}
      </main>
    </>
  );
}
