// A repository's tags, a page at a time, each with what a pull of it gets: the trust state of its
// signatures and, from the gate itself, whether it is served and why not.
import { useState } from 'preact/hooks';
import { enc, getJson, sendJson, type SessionInfo } from '../api.js';
import { href } from '../router.js';
import { Copy, formatBytes, formatDate, Loading, Notice, Problem, useAction, useLoad } from '../ui.js';
import type { ProjectDetail } from './project.js';

interface Signature {
  format: string;
  keyId?: string;
  signer?: { fingerprint: string; userIds: string[] };
  identity?: string;
  signedAt?: string;
  accepted: boolean;
  problem?: string;
}

interface TagTrust {
  name: string;
  digest: string;
  mediaType: string;
  size: number;
  platforms: string[];
  state: 'verified' | 'signature-artifact' | 'untrusted' | 'other-reference' | 'unsigned';
  gate: { enforced: boolean; served: boolean; via?: string; reason?: string };
  signatures: Signature[];
  referrers: { digest: string; artifactType?: string; mediaType: string }[];
}

const PAGE = 25;

const STATE_LABEL: Record<TagTrust['state'], string> = {
  verified: 'verified',
  'signature-artifact': 'signature',
  untrusted: 'signed by an untrusted key',
  'other-reference': 'signed for another tag or repository',
  unsigned: 'unsigned',
};
const STATE_CLASS: Record<TagTrust['state'], string> = {
  verified: 'state-verified',
  'signature-artifact': 'state-verified',
  untrusted: 'state-untrusted',
  'other-reference': 'state-other',
  unsigned: 'state-unsigned',
};

function verifiedBy(tag: TagTrust): string {
  const s = tag.signatures.find((x) => x.accepted);
  if (!s) return tag.state === 'verified' ? 'by signatures of every platform manifest it lists' : '';
  const who = s.signer ? `${s.signer.userIds[0] ?? s.signer.fingerprint}` : s.keyId;
  return `by ${who} (${s.format === 'simple' ? 'simple signing' : 'cosign'}) for ${s.identity ?? '?'}`;
}

/** The cells of a tag the gate has judged: size, trust state, the gate's decision, details. */
function JudgedCells(props: {
  tag: TagTrust;
  full: string;
  canDelete: boolean;
  busy: boolean;
  onDelete(what: 'tag' | 'manifest', tag: TagTrust): void;
}) {
  const { tag, full, canDelete, busy, onDelete } = props;
  const host = location.host;
  return (
    <>
      <td class="hide-narrow">{formatBytes(tag.size)}</td>
      <td>
        <span class={`state ${STATE_CLASS[tag.state]}`} data-testid="trust-state">
          {STATE_LABEL[tag.state]}
        </span>
        {tag.state === 'verified' && <div class="muted">{verifiedBy(tag)}</div>}
      </td>
      <td>
        {tag.gate.enforced ? (
          <span class={`state ${tag.gate.served ? 'gate-served' : 'gate-refused'}`} data-testid="gate">
            {tag.gate.served ? 'served' : 'refused'}
          </span>
        ) : (
          <span class="muted" data-testid="gate">
            served (not signed-only)
          </span>
        )}
        {!tag.gate.served && tag.gate.reason && (
          <div class={tag.gate.enforced ? '' : 'muted'} data-testid="gate-reason">
            {tag.gate.enforced ? '' : 'If signed-only were on: '}
            {tag.gate.reason}
          </div>
        )}
      </td>
      <td>
        <details>
          <summary>Signatures ({tag.signatures.length}), pull command</summary>
          <pre>
            podman pull {host}/{full}:{tag.name}
            {'\n'}podman pull {host}/{full}@{tag.digest}
          </pre>
          {tag.signatures.length > 0 && (
            <ul>
              {tag.signatures.map((s, i) => (
                <li key={i}>
                  {s.format === 'simple' ? 'Simple signing' : 'cosign'}, key {s.signer?.fingerprint ?? s.keyId ?? 'unknown'}
                  {s.signer?.userIds[0] ? ` (${s.signer.userIds[0]})` : ''}, for {s.identity ?? '?'}
                  {s.signedAt ? `, made ${formatDate(s.signedAt)}` : ''}: {s.accepted ? 'accepted' : `not accepted: ${s.problem ?? ''}`}
                </li>
              ))}
            </ul>
          )}
          {tag.referrers.length > 0 && (
            <>
              <p>Referrers:</p>
              <ul>
                {tag.referrers.map((r) => (
                  <li key={r.digest}>
                    <span class="digest">{r.digest}</span> {r.artifactType ?? r.mediaType}
                  </li>
                ))}
              </ul>
            </>
          )}
          {canDelete && (
            <div class="pager">
              <button type="button" class="danger" disabled={busy} onClick={() => onDelete('tag', tag)}>
                Delete tag {tag.name}
              </button>
              <button type="button" class="danger" disabled={busy} onClick={() => onDelete('manifest', tag)}>
                Delete manifest
              </button>
            </div>
          )}
        </details>
      </td>
    </>
  );
}

export function RepositoryPage({ project, repository }: { session: SessionInfo; project: string; repository: string }) {
  const full = `${project}/${repository}`;
  const [cursor, setCursor] = useState<string[]>([]);
  const last = cursor[cursor.length - 1];
  const detail = useLoad(() => getJson<ProjectDetail>(`/projects/${enc(project)}`), [project]);
  const repoPath = `/projects/${enc(project)}/repositories/${repository.split('/').map(enc).join('/')}`;
  const page = `n=${PAGE}${last ? `&last=${enc(last)}` : ''}`;
  // The page's tags and digests come first (one cheap query); what the gate makes of each follows.
  const tags = useLoad(
    () => getJson<{ tags: { name: string; digest?: string; pushedAt?: string }[]; next?: string }>(`${repoPath}/tags?${page}`),
    [full, last],
  );
  // Asked once the list is there: both at once would make the list wait behind the judging.
  const trust = useLoad(
    () => (tags.data ? getJson<{ tags: TagTrust[] }>(`${repoPath}/trust?${page}`) : Promise.resolve(undefined)),
    [tags.data],
  );
  const judged = new Map((trust.data?.tags ?? []).map((t) => [t.name, t]));
  const action = useAction();
  const [notice, setNotice] = useState<string>();
  const canDelete = detail.data?.permissions.delete ?? false;
  const remove = (what: 'tag' | 'manifest', tag: TagTrust) =>
    action.run(async () => {
      const target = what === 'tag' ? `tags/${enc(tag.name)}` : `manifests/${tag.digest}`;
      if (!confirm(what === 'tag' ? `Delete tag ${tag.name}?` : `Delete manifest ${tag.digest} and every tag naming it?`)) return;
      await sendJson('DELETE', `${repoPath}/${target}`);
      setNotice(what === 'tag' ? `Tag ${tag.name} deleted.` : `Manifest ${tag.digest} deleted.`);
      tags.reload();
    });
  return (
    <>
      <p class="muted">
        <a href={href.projects}>Projects</a> / <a href={href.project(project)}>{project}</a> /
      </p>
      <h1>Repository {full}</h1>
      {detail.data?.signedOnly && <p>This project serves signed images only: the Pull column is the gate's own decision.</p>}
      <Loading when={tags.loading && !tags.data} />
      <p class="visually-hidden" aria-live="polite">
        {trust.loading ? 'Checking signatures' : 'Signatures checked'}
      </p>
      <Problem message={tags.error} />
      <Problem message={trust.error} />
      <Notice message={notice} />
      <Problem message={action.error} />
      {tags.data && (
        <div class="table-wrap">
          <table aria-label="Tags">
            <thead>
              <tr>
                <th scope="col">Tag</th>
                <th scope="col">Digest</th>
                <th scope="col" class="hide-narrow">
                  Pushed
                </th>
                <th scope="col" class="hide-narrow">
                  Size
                </th>
                <th scope="col">Trust</th>
                <th scope="col">Pull</th>
                <th scope="col">Details</th>
              </tr>
            </thead>
            <tbody>
              {tags.data.tags.map((listed) => {
                const tag = judged.get(listed.name);
                const digest = tag?.digest ?? listed.digest ?? '';
                return (
                  <tr key={listed.name} data-tag={listed.name}>
                    <th scope="row">{listed.name}</th>
                    <td>
                      <span class="digest">{digest.slice(0, 19)}…</span> <Copy text={digest} label={`Copy digest of ${listed.name}`} />
                      {tag && tag.platforms.length > 0 && <div class="muted">{tag.platforms.join(', ')}</div>}
                    </td>
                    <td class="hide-narrow">{formatDate(listed.pushedAt)}</td>
                    {!tag ? (
                      <td colSpan={4} class="muted">
                        {trust.loading ? 'Checking signatures…' : 'No longer present.'}
                      </td>
                    ) : (
                      <JudgedCells
                        tag={tag}
                        full={full}
                        canDelete={canDelete}
                        busy={action.busy}
                        onDelete={(what, t) => void remove(what, t)}
                      />
                    )}
                  </tr>
                );
              })}
              {tags.data.tags.length === 0 && (
                <tr>
                  <td colSpan={7}>No tags.</td>
                </tr>
              )}
            </tbody>
          </table>
        </div>
      )}
      <div class="pager">
        <button type="button" class="secondary" disabled={cursor.length === 0} onClick={() => setCursor(cursor.slice(0, -1))}>
          Previous page
        </button>
        <button
          type="button"
          class="secondary"
          disabled={!tags.data?.next}
          onClick={() => tags.data?.next && setCursor([...cursor, tags.data.next])}
        >
          Next page
        </button>
      </div>
    </>
  );
}
