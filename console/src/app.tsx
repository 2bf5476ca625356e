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

  if (!session) {
    return (
      <main>
        <Problem message={error} />
      </main>
    );
  }
  return (
    <>
      <header class="top">
        <a class="brand" href={href.projects}>
          Signet
        </a>
        <nav aria-label="Main">
          <a href={href.projects}>Projects</a>
          {session.admin && session.user !== undefined && <a href={href.admin}>Administration</a>}
        </nav>
        <div class="who">
          {session.user !== undefined ? (
            <>
              <span>
                Signed in as <strong data-testid="user">{session.user}</strong>
              </span>
              <button type="button" onClick={() => void signOut()}>
                Sign out
              </button>
            </>
          ) : session.authEnabled ? (
            <a class="button" href={href.signin}>
              Sign in
            </a>
          ) : null}
        </div>
      </header>
      <main id="main">
        {route.page === 'signin' ? (
          <SignInPage
            onSignedIn={(info) => {
              adopt(info);
              location.hash = href.projects;
            }}
          />
        ) : route.page === 'admin' ? (
          <AdminPage session={session} />
        ) : route.page === 'project' ? (
          <ProjectPage key={route.project} session={session} project={route.project} tab={route.tab} />
        ) : route.page === 'repository' ? (
          <RepositoryPage key={`${route.project}/${route.repository}`} session={session} project={route.project} repository={route.repository} />
        ) : (
          <ProjectsPage session={session} />
        )}
      </main>
    </>
  );
}
