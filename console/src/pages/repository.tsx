import type { SessionInfo } from '../api.js';
export function RepositoryPage({ repository }: { session: SessionInfo; project: string; repository: string }) {
  return <h1>{repository}</h1>;
}
