import { useState } from 'preact/hooks';
import { call, enc, getJson, sendJson } from '../api.js';
import { formatDate, Loading, Notice, Problem, useAction, useLoad } from '../ui.js';
import type { ProjectDetail } from './project.js';

interface KeyRow {
  id: number;
  kind: string;
  fingerprint: string;
  userIds: string[];
  algorithm?: string;
  expiresAt?: string | null;
  revoked?: boolean;
  subkeys?: { keyId: string; algorithm: string; expiresAt: string | null; revoked: boolean; signs: boolean }[];
}

function subkeyState(s: { expiresAt: string | null; revoked: boolean }): string {
  if (s.revoked) return 'revoked';
  if (s.expiresAt && new Date(s.expiresAt) < new Date()) return `expired ${formatDate(s.expiresAt)}`;
  return s.expiresAt ? `valid until ${formatDate(s.expiresAt)}` : 'valid, no expiry';
}

export function KeysTab({ project }: { project: ProjectDetail }) {
  const list = useLoad(() => getJson<{ keys: KeyRow[] }>(`/projects/${enc(project.name)}/keys?details=1`), [project.name]);
  const action = useAction();
  const [armored, setArmored] = useState('');
  const [notice, setNotice] = useState<string>();
  const upload = (body: BodyInit) =>
    action.run(async () => {
      const res = await call('POST', `/projects/${enc(project.name)}/keys`, undefined, body);
      const key = (await res.json()) as KeyRow & { outcome: string };
      setNotice(
        `Key ${key.fingerprint} ${key.outcome === 'created' ? 'added' : key.outcome === 'updated' ? 'updated' : 'was already trusted'}.`,
      );
      setArmored('');
      list.reload();
    });
  return (
    <section aria-label="Trusted keys">
      <h2>Trusted keys</h2>
      <p class="muted">Signatures by these keys open the gate of a signed-only project, and they go into the exported client policy.</p>
      <Loading when={list.loading && !list.data} />
      <Problem message={list.error} />
      {list.data && list.data.keys.length === 0 && <p>This project trusts no keys yet.</p>}
      {list.data?.keys.map((k) => (
        <article key={k.id} class="key" aria-label={`Key ${k.fingerprint}`}>
          <h3 class="digest">{k.fingerprint}</h3>
          <p>
            {k.kind === 'openpgp' ? 'OpenPGP' : 'cosign'} · {k.algorithm ?? ''}
            {k.revoked ? ' · revoked' : ''}{' '}
            {k.expiresAt ? ` · expires ${formatDate(k.expiresAt)}` : k.kind === 'openpgp' ? ' · no expiry' : ''}
          </p>
          {k.userIds.length > 0 && (
            <ul>
              {k.userIds.map((u) => (
                <li key={u}>{u}</li>
              ))}
            </ul>
          )}
          {k.subkeys && k.subkeys.length > 0 && (
            <table>
              <caption>Subkeys</caption>
              <thead>
                <tr>
                  <th scope="col">Key ID</th>
                  <th scope="col">Algorithm</th>
                  <th scope="col">Signs</th>
                  <th scope="col">State</th>
                </tr>
              </thead>
              <tbody>
                {k.subkeys.map((s) => (
                  <tr key={s.keyId}>
                    <td class="digest">{s.keyId}</td>
                    <td>{s.algorithm}</td>
                    <td>{s.signs ? 'yes' : 'no'}</td>
                    <td>{subkeyState(s)}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          )}
          {project.permissions.admin && (
            <button
              type="button"
              class="danger"
              aria-label={`Remove key ${k.fingerprint}`}
              disabled={action.busy}
              onClick={() =>
                void action.run(async () => {
                  await sendJson('DELETE', `/projects/${enc(project.name)}/keys/${k.id}`);
                  setNotice(`Key ${k.fingerprint} removed.`);
                  list.reload();
                })
              }
            >
              Remove
            </button>
          )}
        </article>
      ))}
      {project.permissions.admin && (
        <>
          <h3>Add a key</h3>
          <form class="inline" onSubmit={(e) => e.preventDefault()}>
            <label for="key-file">Upload a key file (gpg --export, armored or binary, or a cosign PEM public key)</label>
            <input
              id="key-file"
              type="file"
              disabled={action.busy}
              onChange={(e) => {
                const file = e.currentTarget.files?.[0];
                if (file) void upload(file);
                e.currentTarget.value = '';
              }}
            />
          </form>
          <form
            onSubmit={(e) => {
              e.preventDefault();
              void upload(armored);
            }}
          >
            <label for="key-text">Or paste an armored OpenPGP key or a PEM public key</label>
            <textarea id="key-text" rows={6} value={armored} onInput={(e) => setArmored(e.currentTarget.value)} />
            <div>
              <button type="submit" disabled={action.busy || armored.trim() === ''}>
                Add pasted key
              </button>
            </div>
          </form>
        </>
      )}
      <Notice message={notice} />
      <Problem message={action.error} />
    </section>
  );
}
