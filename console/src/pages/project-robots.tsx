// A project's robot accounts, for its admins: the list, creating one (its secret is in the
// creation's answer only, so it is shown here once, with a copy button, and never again) and
// revoking one after a confirmation. Revoking deletes the robot: its secret, tokens and console
// sessions stop working on every replica at once, and the audit log keeps the record.
import { useState } from 'preact/hooks';
import { enc, getJson, sendJson } from '../api.js';
import { Copy, formatDate, Loading, Notice, Problem, useAction, useLoad } from '../ui.js';
import type { ProjectDetail } from './project.js';

interface RobotRow {
  name: string;
  role: string;
  expiresAt: string | null;
  createdAt: string;
  createdBy: string | null;
  lastUsedAt: string | null;
}

const ROLES = ['guest', 'developer', 'maintainer'];
const EXPIRIES: [value: string, label: string][] = [
  ['30', '30 days'],
  ['90', '90 days'],
  ['180', '180 days'],
  ['365', '1 year'],
  ['never', 'never'],
];

const expired = (robot: RobotRow): boolean => robot.expiresAt !== null && new Date(robot.expiresAt) <= new Date();

/** The secret of a robot just made: shown while this panel is open, and never again. */
function NewSecret({ robot, secret, onDone }: { robot: string; secret: string; onDone(): void }) {
  return (
    <section class="secret" aria-label="New robot secret">
      <h3>{robot} created</h3>
      <p>
        <strong>Copy its secret now: it will not be shown again.</strong> Signet keeps only a hash of it; if it is lost, revoke the robot
        and create another.
      </p>
      <label for="robot-secret">Secret of {robot}</label>
      <div class="inline">
        <input id="robot-secret" class="digest" readOnly size={46} value={secret} onFocus={(e) => e.currentTarget.select()} />
        <Copy text={secret} label={`Copy the secret of ${robot}`} />
      </div>
      <p>
        Log in with it as with a password, for example <code>{`docker login ${location.host} -u '${robot}' --password-stdin`}</code>, or
        sign in to this console with it to read the project.
      </p>
      <button type="button" class="secondary" onClick={onDone}>
        I have stored the secret
      </button>
    </section>
  );
}

export function RobotsTab({ project }: { project: ProjectDetail }) {
  const base = `/projects/${enc(project.name)}/robots`;
  const list = useLoad(() => getJson<{ robots: RobotRow[] }>(base), [base]);
  const action = useAction();
  const [notice, setNotice] = useState<string>();
  const [name, setName] = useState('');
  const [role, setRole] = useState('developer');
  const [expiry, setExpiry] = useState('90');
  const [created, setCreated] = useState<{ name: string; secret: string }>();
  const [confirming, setConfirming] = useState<string>();

  const create = () =>
    action.run(async () => {
      setNotice(undefined);
      const answer = await sendJson<RobotRow & { secret: string }>('POST', base, {
        name,
        role,
        expiresInDays: expiry === 'never' ? null : Number(expiry),
      });
      if (answer) setCreated({ name: answer.name, secret: answer.secret });
      setName('');
      list.reload();
    });
  const revoke = (robot: string) =>
    action.run(async () => {
      await sendJson('DELETE', `${base}/${enc(robot)}`);
      setConfirming(undefined);
      if (created?.name === robot) setCreated(undefined);
      setNotice(`${robot} is revoked: its secret, tokens and sessions no longer work.`);
      list.reload();
    });

  return (
    <section aria-label="Robots">
      <h2>Robot accounts</h2>
      <p class="muted">
        Credentials for CI in this project only, with a role (at most maintainer) and an expiry. They log in as{' '}
        <code>robot${project.name}+name</code> with docker, podman and skopeo.
      </p>
      <Loading when={list.loading && !list.data} />
      <Problem message={list.error} />
      {list.data && (
        <div class="table-wrap">
          <table>
            <caption class="visually-hidden">Robot accounts</caption>
            <thead>
              <tr>
                <th scope="col">Robot</th>
                <th scope="col">Role</th>
                <th scope="col">Expires</th>
                <th scope="col" class="hide-narrow">
                  Created
                </th>
                <th scope="col">Last used</th>
                <th scope="col">State</th>
                <th scope="col">Revoke</th>
              </tr>
            </thead>
            <tbody>
              {list.data.robots.map((r) => (
                <tr key={r.name} data-robot={r.name}>
                  <td>
                    <code>{r.name}</code>
                  </td>
                  <td>{r.role}</td>
                  <td>{r.expiresAt ? formatDate(r.expiresAt) : 'never'}</td>
                  <td class="hide-narrow">
                    {formatDate(r.createdAt)}
                    {r.createdBy ? ` by ${r.createdBy}` : ''}
                  </td>
                  <td>{r.lastUsedAt ? formatDate(r.lastUsedAt) : 'never'}</td>
                  <td>
                    <span class={`state ${expired(r) ? 'state-unsigned' : 'state-verified'}`} data-testid="robot-state">
                      {expired(r) ? 'expired' : 'active'}
                    </span>
                  </td>
                  <td>
                    {confirming === r.name ? (
                      <span role="group" aria-label={`Confirm revoking ${r.name}`}>
                        Its secret stops working at once.{' '}
                        <button type="button" class="danger" disabled={action.busy} onClick={() => void revoke(r.name)}>
                          Revoke {r.name}
                        </button>{' '}
                        <button type="button" class="secondary" onClick={() => setConfirming(undefined)}>
                          Keep it
                        </button>
                      </span>
                    ) : (
                      <button type="button" class="danger" aria-label={`Revoke ${r.name}…`} onClick={() => setConfirming(r.name)}>
                        Revoke…
                      </button>
                    )}
                  </td>
                </tr>
              ))}
              {list.data.robots.length === 0 && (
                <tr>
                  <td colSpan={7}>This project has no robot accounts.</td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      )}
      <Notice message={notice} />
      {created && <NewSecret robot={created.name} secret={created.secret} onDone={() => setCreated(undefined)} />}
      <h3>Create a robot</h3>
      <form
        class="inline"
        onSubmit={(e) => {
          e.preventDefault();
          void create();
        }}
      >
        <label for="robot-name">Robot name</label>
        <input
          id="robot-name"
          required
          maxLength={64}
          pattern="[a-z0-9]+((\.|__?|-+)[a-z0-9]+)*"
          value={name}
          onInput={(e) => setName(e.currentTarget.value)}
        />
        <label for="robot-role">Robot role</label>
        <select id="robot-role" value={role} onChange={(e) => setRole(e.currentTarget.value)}>
          {ROLES.map((r) => (
            <option key={r} value={r}>
              {r}
            </option>
          ))}
        </select>
        <label for="robot-expiry">Expires after</label>
        <select id="robot-expiry" value={expiry} onChange={(e) => setExpiry(e.currentTarget.value)}>
          {EXPIRIES.map(([value, label]) => (
            <option key={value} value={value}>
              {label}
            </option>
          ))}
        </select>
        <button type="submit" disabled={action.busy}>
          Create robot
        </button>
      </form>
      <Problem message={action.error} />
    </section>
  );
}
