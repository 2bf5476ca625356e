// A project: its repositories, members, trusted keys, settings, robot accounts, audit log and client
// configuration.
import { getJson, type SessionInfo } from '../api.js';
import { href } from '../router.js';
import { Loading, Problem, useLoad } from '../ui.js';
import { AuditTab } from './project-audit.js';
import { ClientsTab } from './project-clients.js';
import { KeysTab } from './project-keys.js';
import { MembersTab } from './project-members.js';
import { RepositoriesTab } from './project-repositories.js';
import { RobotsTab } from './project-robots.js';
import { SettingsTab } from './project-settings.js';

export interface ProjectDetail {
  name: string;
  public: boolean;
  signedOnly: boolean;
  quotaBytes: number | null;
  usedBytes: number;
  members?: { user: string; role: string }[];
  permissions: { push: boolean; delete: boolean; admin: boolean };
  registryAdmin: boolean;
}

const TABS: [id: string, label: string][] = [
  ['repositories', 'Repositories'],
  ['members', 'Members'],
  ['keys', 'Trusted keys'],
  ['settings', 'Settings'],
  ['robots', 'Robots'],
  ['audit', 'Audit log'],
  ['clients', 'Configure clients'],
];

export function ProjectPage({ project, tab }: { session: SessionInfo; project: string; tab: string }) {
  const detail = useLoad(() => getJson<ProjectDetail>(`/projects/${encodeURIComponent(project)}`), [project]);
  const p = detail.data;
  // Members and the audit log for those who may see them; robots for the project's admins.
  const visible = TABS.filter(([id]) =>
    id === 'members' || id === 'audit' ? p?.members !== undefined : id === 'robots' ? p?.permissions.admin === true : true,
  );
  return (
    <>
      <p class="muted">
        <a href={href.projects}>Projects</a> /
      </p>
      <h1>
        Project {project}{' '}
        {p && (
          <span class="muted">
            ({p.public ? 'public' : 'private'}
            {p.signedOnly ? ', signed images only' : ''})
          </span>
        )}
      </h1>
      <Loading when={detail.loading && !p} />
      <Problem message={detail.error} />
      {p && (
        <>
          <nav class="tabs" aria-label="Project sections">
            {visible.map(([id, label]) => (
              <a key={id} href={href.project(project, id)} aria-current={tab === id ? 'page' : undefined}>
                {label}
              </a>
            ))}
          </nav>
          {tab === 'members' ? (
            <MembersTab project={p} onChange={detail.reload} />
          ) : tab === 'keys' ? (
            <KeysTab project={p} />
          ) : tab === 'settings' ? (
            <SettingsTab project={p} onChange={detail.reload} />
          ) : tab === 'robots' ? (
            p.permissions.admin ? (
              <RobotsTab project={p} />
            ) : (
              <Problem message="Only the project's admins manage its robot accounts." />
            )
          ) : tab === 'audit' ? (
            <AuditTab project={p} />
          ) : tab === 'clients' ? (
            <ClientsTab project={p} />
          ) : (
            <RepositoriesTab project={p} />
          )}
        </>
      )}
    </>
  );
}
