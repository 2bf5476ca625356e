// Hash routes (#/p/team/repositories): the server serves one page at /, so any address a person
// bookmarks or reloads is that page; the part after # picks the view.
import { useEffect, useState } from 'preact/hooks';

export type Route =
  | { page: 'projects' }
  | { page: 'signin' }
  | { page: 'admin' }
  | { page: 'project'; project: string; tab: string }
  | { page: 'repository'; project: string; repository: string };

/**
 * One component of a repository name (the distribution spec's path-component, as
 * storage/oci-grammar.ts checks it): what a project name and each part of a repository's path
 * must be. Names from the address are held to it before they go into an API path: `..` survived
 * encodeURIComponent, so `#/r/team/app/../../../other/repositories/app` showed "team/app/…" while
 * the page read, and its delete buttons acted on, project other's repository app (adversarial
 * testing, stop 43).
 */
const COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;

export function parseRoute(hash: string): Route {
  let parts: string[];
  try {
    parts = hash.replace(/^#\/?/, '').split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    return { page: 'projects' }; // a malformed %-escape
  }
  if (parts[0] === 'signin') return { page: 'signin' };
  if (parts[0] === 'admin') return { page: 'admin' };
  const names = (from: number, to?: number): boolean => parts.slice(from, to).every((part) => COMPONENT.test(part));
  if (parts[0] === 'p' && parts[1] && names(1, 2)) return { page: 'project', project: parts[1], tab: parts[2] ?? 'repositories' };
  if (parts[0] === 'r' && parts[1] && parts[2] && names(1)) {
    return { page: 'repository', project: parts[1], repository: parts.slice(2).join('/') };
  }
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
