// Client configuration for a project: the containers-policy.json(5) that accepts exactly what the
// pull gate accepts, and the registries.d(5) YAML pointing clients at this registry's signatures.
// (`signedBy` with keyType GPGKeys and inline keyData is also the form Confidential Containers'
// KBS security policy takes.)
import type { ProjectKey } from '../storage/key-store.js';

export interface PolicyOptions {
  /** `host[:port]` clients use for this registry. */
  host: string;
  project: string;
  keys: ProjectKey[];
  /** What the policy says for every other image: refuse (least privilege) or accept. */
  otherImages: 'reject' | 'accept';
  /** A mirror project: what its upstream's signatures name instead of `<host>/<project>`. */
  signedPrefix?: string;
}

type Requirement = Record<string, unknown>;

/**
 * In policy.json every requirement of a scope must hold (AND), so one kind of key is exported:
 * the OpenPGP keys as one keyring (any of them may sign), else the cosign keys.
 *
 * The identity rules are the gate's (pull-gate.ts): simple signatures name the tag they were made
 * for (`matchRepoDigestOrExact`); `cosign sign` signs a digest and names only the repository, so
 * containers/image needs `matchRepository` to accept its signatures on a pull by tag.
 */
export function projectPolicy(options: PolicyOptions): Record<string, unknown> {
  const scope = `${options.host}/${options.project}`;
  // A mirror project: signatures name the upstream, so `<host>/<project>` is remapped to it
  // (containers/image's remapIdentity, which then matches as matchRepoDigestOrExact).
  const remap =
    options.signedPrefix === undefined ? undefined : { type: 'remapIdentity', prefix: scope, signedPrefix: options.signedPrefix };
  const openpgp = options.keys.filter((k) => k.kind === 'openpgp');
  const cosign = options.keys.filter((k) => k.kind === 'cosign');
  let requirement: Requirement;
  if (openpgp.length > 0) {
    requirement = {
      type: 'signedBy',
      keyType: 'GPGKeys',
      keyData: Buffer.concat(openpgp.map((k) => k.material)).toString('base64'),
      signedIdentity: remap ?? { type: 'matchRepoDigestOrExact' },
    };
  } else if (cosign.length === 1) {
    requirement = {
      type: 'sigstoreSigned',
      keyData: cosign[0]!.material.toString('base64'),
      signedIdentity: remap ?? { type: 'matchRepository' },
    };
  } else if (cosign.length > 1) {
    requirement = {
      type: 'sigstoreSigned',
      keyDatas: cosign.map((k) => k.material.toString('base64')),
      signedIdentity: remap ?? { type: 'matchRepository' },
    };
  } else {
    // No trusted keys: nothing can be verified, so nothing from the project is accepted.
    requirement = { type: 'reject' };
  }
  return {
    default: [{ type: options.otherImages === 'reject' ? 'reject' : 'insecureAcceptAnything' }],
    transports: {
      docker: { [scope]: [requirement] },
      'docker-daemon': { '': [{ type: 'insecureAcceptAnything' }] },
    },
  };
}

export function registriesDYaml(options: { host: string; lookasideUrl: string; cosign: boolean }): string {
  return [
    `# registries.d entry for ${options.host}, from Signet.`,
    '# Clients that see X-Registry-Supports-Signatures use the registry API and ignore the lookaside.',
    'docker:',
    `  ${options.host}:`,
    `    lookaside: ${options.lookasideUrl}`,
    ...(options.cosign ? ['    use-sigstore-attachments: true'] : []),
    '',
  ].join('\n');
}

/** A file as OpenShift's Machine Config Operator writes it onto nodes (Ignition `storage.files`). */
export interface NodeFile {
  path: string;
  content: string;
}

/**
 * An OpenShift MachineConfig that writes the given files onto every node of `role`, built as Red
 * Hat's documentation builds the one for signature verification: Ignition 3.2.0, each file's
 * contents a base64 `data:` URL, mode 0644 (420), overwriting what is there. Returned as an object
 * for YAML or JSON output.
 */
export function machineConfig(options: { name: string; role: string; files: NodeFile[] }): Record<string, unknown> {
  return {
    apiVersion: 'machineconfiguration.openshift.io/v1',
    kind: 'MachineConfig',
    metadata: { name: options.name, labels: { 'machineconfiguration.openshift.io/role': options.role } },
    spec: {
      config: {
        ignition: { version: '3.2.0' },
        storage: {
          files: options.files.map((file) => ({
            path: file.path,
            mode: 420,
            overwrite: true,
            contents: { source: `data:text/plain;charset=utf-8;base64,${Buffer.from(file.content).toString('base64')}` },
          })),
        },
      },
    },
  };
}

/**
 * The two resources Confidential Containers' Key Broker Service hands the guest for signature
 * verification: `security-policy` is a containers-policy.json (keys inline as `keyData`, which
 * projectPolicy writes), `sigstore-config` a registries.d document naming where simple signatures
 * are. image-rs reads the older `sigstore:` key of registries.d (not `lookaside:`), so that is the
 * one written.
 */
export function kbsResources(options: { policy: Record<string, unknown>; scope: string; lookasideUrl: string }): {
  'security-policy': string;
  'sigstore-config': string;
} {
  return {
    'security-policy': `${JSON.stringify(options.policy, null, 2)}\n`,
    'sigstore-config': [`docker:`, `  ${options.scope}:`, `    sigstore: ${options.lookasideUrl}`, ''].join('\n'),
  };
}
