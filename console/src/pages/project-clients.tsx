import { useState } from 'preact/hooks';
import { enc, getText } from '../api.js';
import { Loading, Problem, useLoad } from '../ui.js';
import type { ProjectDetail } from './project.js';

const EXPORTS = [
  ['policy', 'policy.json', 'policy.json'],
  ['registries', 'registries.d.yaml', 'registries.d'],
  ['machineconfig', 'machineconfig.yaml', 'OpenShift MachineConfig'],
  ['kbs', 'kbs-resources.json', 'Confidential Containers KBS resources'],
] as const;

export function ClientsTab({ project }: { project: ProjectDetail }) {
  const base = `/projects/${enc(project.name)}`;
  const [acceptOthers, setAcceptOthers] = useState(false);
  const files = useLoad(async () => {
    const [policy, registries, machineconfig, kbs] = await Promise.all([
      getText(`${base}/policy.json${acceptOthers ? '?default=accept' : ''}`),
      getText(`${base}/registries.d.yaml`),
      getText(`${base}/machineconfig.yaml`),
      getText(`${base}/kbs-resources.json`),
    ]);
    return { policy, registries, machineconfig, kbs };
  }, [project.name, acceptOthers]);
  const slug = project.name.replace(/[^a-z0-9]+/g, '-');
  const host = location.host;
  return (
    <section aria-label="Configure clients">
      <h2>Configure clients</h2>
      <p>
        These files make podman, skopeo, buildah and CRI-O accept exactly what this project's gate accepts: images of {host}/{project.name}{' '}
        signed by its trusted keys.
      </p>
      <label class="check">
        <input type="checkbox" checked={acceptOthers} onChange={(e) => setAcceptOthers(e.currentTarget.checked)} /> Accept images from
        elsewhere in policy.json (otherwise they are rejected)
      </label>
      <Loading when={files.loading && !files.data} />
      <Problem message={files.error} />
      {files.data &&
        ((data) => (
          <>
            <h3>podman, skopeo, CRI-O</h3>
            <pre>
              {[
                `sudo install -m 0644 policy.json /etc/containers/policy.json`,
                `sudo install -m 0644 registries.d.yaml /etc/containers/registries.d/signet-${slug}.yaml`,
                `podman pull ${host}/${project.name}/<repository>:<tag>`,
                `# or without root: ~/.config/containers/policy.json and ~/.config/containers/registries.d/`,
                `# from a script: signet policy ${project.name} > policy.json; signet policy ${project.name} --registries-d > registries.d.yaml`,
              ].join('\n')}
            </pre>
            {EXPORTS.map(([key, file, title]) => (
              <div key={key}>
                <h3>{title}</h3>
                <p>
                  <a
                    class="button"
                    href={`/api/v1${base}/${file}${key === 'policy' && acceptOthers ? '?default=accept' : ''}`}
                    download={key === 'registries' ? `signet-${slug}.yaml` : file}
                  >
                    Download {file}
                  </a>
                  {key === 'machineconfig' && (
                    <span class="muted"> Apply with: oc apply -f machineconfig.yaml (other images stay accepted on the nodes)</span>
                  )}
                  {key === 'kbs' && (
                    <span class="muted">
                      {' '}
                      Store each member as a KBS resource: default/security-policy/test and default/sigstore-config/test
                    </span>
                  )}
                </p>
                <pre aria-label={`${title} contents`}>{data[key]}</pre>
              </div>
            ))}
          </>
        ))(files.data)}
    </section>
  );
}
