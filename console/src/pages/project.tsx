import type { SessionInfo } from '../api.js';
export function ProjectPage({ project }: { session: SessionInfo; project: string; tab: string }) {
  return <h1>{project}</h1>;
}
