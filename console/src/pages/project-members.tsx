import { useState } from 'preact/hooks';
import { enc, sendJson } from '../api.js';
import { Notice, Problem, useAction } from '../ui.js';
import type { ProjectDetail } from './project.js';

const ROLES = ['guest', 'developer', 'maintainer', 'admin'];

export function MembersTab({ project, onChange }: { project: ProjectDetail; onChange(): void }) {
  const action = useAction();
  const [notice, setNotice] = useState<string>();
  const [user, setUser] = useState('');
  const [role, setRole] = useState('developer');
  const canEdit = project.permissions.admin;
  const set = (member: string, newRole: string) =>
    action.run(async () => {
      await sendJson('PUT', `/projects/${enc(project.name)}/members/${enc(member)}`, { role: newRole });
      setNotice(`${member} is now ${newRole}.`);
      onChange();
    });
  const remove = (member: string) =>
    action.run(async () => {
      await sendJson('DELETE', `/projects/${enc(project.name)}/members/${enc(member)}`);
      setNotice(`${member} removed.`);
      onChange();
    });
  return (
    <section aria-label="Members">
      <h2>Members</h2>
      <table>
        <thead>
          <tr>
            <th scope="col">User</th>
            <th scope="col">Role</th>
            {canEdit && <th scope="col">Remove</th>}
          </tr>
        </thead>
        <tbody>
          {(project.members ?? []).map((m) => (
            <tr key={m.user}>
              <td>{m.user}</td>
              <td>
                {canEdit ? (
                  <select
                    aria-label={`Role of ${m.user}`}
                    value={m.role}
                    disabled={action.busy}
                    onChange={(e) => void set(m.user, e.currentTarget.value)}
                  >
                    {ROLES.map((r) => (
                      <option key={r} value={r}>
                        {r}
                      </option>
                    ))}
                  </select>
                ) : (
                  m.role
                )}
              </td>
              {canEdit && (
                <td>
                  <button
                    type="button"
                    class="danger"
                    aria-label={`Remove ${m.user}`}
                    disabled={action.busy}
                    onClick={() => void remove(m.user)}
                  >
                    Remove
                  </button>
                </td>
              )}
            </tr>
          ))}
        </tbody>
      </table>
      {canEdit && (
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            void set(user, role).then(() => setUser(''));
          }}
        >
          <label for="member-user">User name</label>
          <input id="member-user" required value={user} onInput={(e) => setUser(e.currentTarget.value)} />
          <label for="member-role">Role</label>
          <select id="member-role" value={role} onChange={(e) => setRole(e.currentTarget.value)}>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
          <button type="submit" disabled={action.busy}>
            Add member
          </button>
        </form>
      )}
      <Notice message={notice} />
      <Problem message={action.error} />
    </section>
  );
}
