// A mirror project's settings (issue 19): the upstream, its lookaside, whether to use the
// upstream's signature API extension, and whether credentials are set. The API never returns the
// password, and neither does this page: the password field is write-only and always starts empty.
// Changing these makes the registry send requests (with stored credentials) to a URL of the
// setter's choosing, so the API lets only registry administrators do it (server/handlers/
// api-projects.ts); everyone else who can see the project sees them read-only.
import { useState } from 'preact/hooks';
import { enc, sendJson } from '../api.js';
import { Notice, Problem, useAction } from '../ui.js';

/** As the management API shows a mirror (server/mirror-body.ts, mirrorJson). */
export interface MirrorInfo {
  upstream: string;
  credentials: boolean;
  lookaside: string | null;
  signedPrefix: string;
  useExtension: boolean;
}

interface Props {
  /** The project as GET /api/v1/projects/<name> answers: `mirror` only for a mirror project. */
  project: { name: string; registryAdmin: boolean; mirror?: MirrorInfo };
  onChange(): void;
}

export function MirrorSettings({ project, onChange }: Props) {
  const [notice, setNotice] = useState<string>();
  const mirror = project.mirror;
  if (!mirror) return null;
  return (
    <section aria-label="Mirror">
      <h3>Mirror</h3>
      <dl>
        <dt>Upstream</dt>
        <dd data-testid="mirror-upstream">{mirror.upstream}</dd>
        <dt>Lookaside</dt>
        <dd data-testid="mirror-lookaside">{mirror.lookaside ?? 'none'}</dd>
        <dt>Signature API extension</dt>
        <dd data-testid="mirror-extension">{mirror.useExtension ? 'used when the upstream offers it' : 'not used'}</dd>
        <dt>Credentials</dt>
        <dd data-testid="mirror-credentials">{mirror.credentials ? 'set' : 'none (anonymous)'}</dd>
        <dt>Signatures name</dt>
        <dd>
          <code>{mirror.signedPrefix}</code>
        </dd>
      </dl>
      {project.registryAdmin ? (
        // Keyed by what the server holds: after a save the fields show it as the server stored it.
        <MirrorForm
          key={JSON.stringify(mirror)}
          project={project.name}
          mirror={mirror}
          onSaved={(message) => {
            setNotice(message);
            onChange();
          }}
        />
      ) : (
        <p class="muted">Only registry administrators change mirror settings.</p>
      )}
      <Notice message={notice} />
    </section>
  );
}

function MirrorForm({ project, mirror, onSaved }: { project: string; mirror: MirrorInfo; onSaved(message: string): void }) {
  const action = useAction();
  const [upstream, setUpstream] = useState(mirror.upstream);
  const [lookaside, setLookaside] = useState(mirror.lookaside ?? '');
  const [useExtension, setUseExtension] = useState(mirror.useExtension);
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const save = (changes: Record<string, unknown>, message: string) =>
    action.run(async () => {
      await sendJson('PATCH', `/projects/${enc(project)}`, { mirror: changes });
      setPassword('');
      onSaved(message);
    });
  return (
    <>
      <form
        onSubmit={(e) => {
          e.preventDefault();
          // Empty credential fields leave the stored ones as they are; a password alone replaces
          // the password of the stored user name.
          void save(
            {
              upstream: upstream.trim(),
              lookaside: lookaside.trim() === '' ? null : lookaside.trim(),
              useExtension,
              ...(username.trim() !== '' ? { username: username.trim() } : {}),
              ...(password !== '' ? { password } : {}),
            },
            'Mirror settings saved.',
          );
        }}
      >
        <label for="mirror-upstream">Upstream URL</label>
        <input id="mirror-upstream" type="url" required value={upstream} onInput={(e) => setUpstream(e.currentTarget.value)} />
        <label for="mirror-lookaside">Lookaside URL (empty: none)</label>
        <input id="mirror-lookaside" type="url" value={lookaside} onInput={(e) => setLookaside(e.currentTarget.value)} />
        <label class="check">
          <input type="checkbox" checked={useExtension} onChange={(e) => setUseExtension(e.currentTarget.checked)} />
          Use the upstream's signature API extension when it offers one
        </label>
        <label for="mirror-username">Upstream user name{mirror.credentials ? ' (empty: keep)' : ''}</label>
        <input id="mirror-username" autocomplete="off" value={username} onInput={(e) => setUsername(e.currentTarget.value)} />
        <label for="mirror-password">Upstream password{mirror.credentials ? ' (empty: keep)' : ''}</label>
        <input
          id="mirror-password"
          type="password"
          autocomplete="new-password"
          value={password}
          onInput={(e) => setPassword(e.currentTarget.value)}
        />
        <div class="pager">
          <button type="submit" disabled={action.busy}>
            Save mirror settings
          </button>
          {mirror.credentials && (
            <button
              type="button"
              class="secondary"
              disabled={action.busy}
              onClick={() => void save({ username: null }, 'Credentials removed.')}
            >
              Remove credentials
            </button>
          )}
        </div>
      </form>
      <Problem message={action.error} />
    </>
  );
}
