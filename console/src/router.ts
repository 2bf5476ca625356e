// Hash routes (#/p/team/repositories): the server serves one page at /, so any address a person
// bookmarks or reloads is that page; the part after # picks the view.
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'projects' }
  | { page: 'signin' }
  | { page: 'admin' }
  | { page: 'project'; project: string; tab: string }
  | { page: 'repository'; project: string; repository: string };

export function parseRoute(hash: string): Route {
  const parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  if (parts[0] === 'signin') return { page: 'signin' };
  if (parts[0] === 'admin') return { page: 'admin' };
  if (parts[0] === 'p' && parts[1]) return { page: 'project', project: parts[1], tab: parts[2] ?? 'repositories' };
  if (parts[0] === 'r' && parts[1] && parts[2]) return { page: 'repository', project: parts[1], repository: parts.slice(2).join('/') };
  return { page: 'projects' };
}

export const href = {
  projects: '#/',
  signin: '#/signin',
  admin: '#/admin',
  project: (project: string, tab = 'repositories') => `#/p/${encodeURIComponent(project)}/${tab}`,
  repository: (project: string, repository: string) =>
    `#/r/${encodeURIComponent(project)}/${repository.split('/').map(encodeURIComponent).join('/')}`,
};

export function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = (): void => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}
