import { useState } from 'preact/hooks';
import { enc, getJson, sendJson } from '../api.js';
import { formatBytes, Notice, Problem, useAction } from '../ui.js';
import { MirrorSettings } from './project-mirror.js';
import type { ProjectDetail } from './project.js';

interface Preview {
  judged: number;
  truncated: boolean;
  refused: { repository: string; tag: string; digest: string; reason: string }[];
}

export function SettingsTab({ project, onChange }: { project: ProjectDetail; onChange(): void }) {
  const action = useAction();
  const [notice, setNotice] = useState<string>();
  const [preview, setPreview] = useState<Preview>();
  const [quota, setQuota] = useState(project.quotaBytes === null ? '' : String(project.quotaBytes));
  const canEdit = project.permissions.admin;
  const update = (changes: Record<string, unknown>, message: string) =>
    action.run(async () => {
      await sendJson('PATCH', `/projects/${enc(project.name)}`, changes);
      setNotice(message);
      setPreview(undefined);
      onChange();
    });
  return (
    <section aria-label="Settings">
      <h2>Settings</h2>
      <h3>Visibility</h3>
      <label class="check">
        <input
          type="checkbox"
          checked={project.public}
          disabled={!canEdit || action.busy}
          onChange={(e) =>
            void update({ public: e.currentTarget.checked }, e.currentTarget.checked ? 'The project is public.' : 'The project is private.')
          }
        />
        Public: anyone may pull, also without signing in
      </label>
      <h3>Signed images only</h3>
      <p>
        {project.signedOnly
          ? 'On: a manifest is served only when a signature by a trusted key names it.'
          : 'Off: every image is served, signed or not.'}
      </p>
      {canEdit &&
        (project.signedOnly ? (
          <button
            type="button"
            class="secondary"
            disabled={action.busy}
            onClick={() => void update({ signedOnly: false }, 'Signed-only is off.')}
          >
            Turn signed-only off
          </button>
        ) : !preview ? (
          <button
            type="button"
            disabled={action.busy}
            onClick={() => void action.run(async () => setPreview(await getJson<Preview>(`/projects/${enc(project.name)}/gate-preview`)))}
          >
            Check what signed-only would refuse
          </button>
        ) : (
          <div role="region" aria-label="Signed-only preview">
            {preview.refused.length === 0 ? (
              <p>All {preview.judged} tags would still be served.</p>
            ) : (
              <>
                <p class="problem">
                  {preview.refused.length} of {preview.judged} tags would stop being served
                  {preview.truncated ? ' (only the first tags were checked)' : ''}:
                </p>
                <div class="table-wrap">
                  <table>
                    <thead>
                      <tr>
                        <th scope="col">Tag</th>
                        <th scope="col">Why the gate would refuse it</th>
                      </tr>
                    </thead>
                    <tbody>
                      {preview.refused.map((r) => (
                        <tr key={`${r.repository}:${r.tag}`}>
                          <td>
                            {r.repository}:{r.tag}
                          </td>
                          <td>{r.reason}</td>
                        </tr>
                      ))}
                    </tbody>
                  </table>
                </div>
              </>
            )}
            <div class="pager">
              <button type="button" disabled={action.busy} onClick={() => void update({ signedOnly: true }, 'Signed-only is on.')}>
                Turn signed-only on
              </button>
              <button type="button" class="secondary" onClick={() => setPreview(undefined)}>
                Cancel
              </button>
            </div>
          </div>
        ))}
      <h3>Quota</h3>
      <p>
        Using {formatBytes(project.usedBytes)}
        {project.quotaBytes !== null ? ` of ${formatBytes(project.quotaBytes)}` : ', no quota'}.
      </p>
      {project.registryAdmin && (
        <form
          class="inline"
          onSubmit={(e) => {
            e.preventDefault();
            void update({ quotaBytes: quota.trim() === '' ? null : Number(quota) }, 'Quota saved.');
          }}
        >
          <label for="quota">Quota in bytes (empty: none)</label>
          <input id="quota" inputMode="numeric" pattern="[0-9]*" value={quota} onInput={(e) => setQuota(e.currentTarget.value)} />
          <button type="submit" disabled={action.busy}>
            Save quota
          </button>
        </form>
      )}
      <Notice message={notice} />
      <Problem message={action.error} />
      <MirrorSettings project={project} onChange={onChange} />
    </section>
  );
}
