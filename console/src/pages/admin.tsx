import type { SessionInfo } from '../api.js';
export function AdminPage(_: { session: SessionInfo }) {
  return <h1>Administration</h1>;
}
