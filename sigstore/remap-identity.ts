// Identity remapping for mirror projects, as containers/image's `remapIdentity` signedIdentity
// (signature/policy_reference_match.go) does it: a pulled reference whose name is `prefix` or
// starts with `prefix/` has that prefix replaced by `signedPrefix`, and the result must then match
// the signed reference as `matchRepoDigestOrExact` does (pulled by tag: the same reference exactly;
// pulled by digest: the same repository). Upstream signatures name the upstream
// (`registry.access.redhat.com/ubi8/ubi:8.0`); pulled here as `<host>/redhat/ubi8/ubi:8.0`, the
// prefix `<host>/redhat` becomes `registry.access.redhat.com`.
import { parseDockerReference, type DockerReference } from './docker-reference.js';

const DOMAIN_RE =
  /^(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])(?:\.(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9]))*(?::[0-9]+)?$/;

/** `host[:port][/namespace]` of an upstream URL: what its signatures name by default. */
export function defaultSignedPrefix(upstream: string): string {
  const url = new URL(upstream);
  return `${url.host}${url.pathname.replace(/\/+$/, '')}`;
}

/**
 * Why a signedPrefix is not one containers/image takes (validateIdentityRemappingPrefix): a host
 * (`host[:port]`), or a repository name with an explicit host and neither tag nor digest.
 */
export function signedPrefixProblem(untrusted: string): string | undefined {
  if (DOMAIN_RE.test(untrusted)) return undefined;
  const slash = untrusted.indexOf('/');
  const ref = parseDockerReference(untrusted);
  if (slash < 0 || !ref || ref.tag !== undefined || ref.digest !== undefined || `${ref.host}/${ref.repository}` !== untrusted) {
    return 'expected host[:port] or host[:port]/namespace, as signatures name the upstream (no tag, no digest, lower-case path)';
  }
  return undefined;
}

/**
 * The repository the signature must name for a pull of `repository` from mirror project `project`,
 * or undefined when the name does not fall under the prefix (it always does for the project's own
 * repositories). `docker.io` names are normalised as containers/image normalises them.
 */
export function remappedRepository(repository: string, project: string, signedPrefix: string): DockerReference | undefined {
  if (repository !== project && !repository.startsWith(`${project}/`)) return undefined;
  const remapped = `${signedPrefix}${repository.slice(project.length)}`;
  const slash = remapped.indexOf('/');
  if (slash < 0) return undefined;
  return normalise({ host: remapped.slice(0, slash), repository: remapped.slice(slash + 1) });
}

/** containers/image's ParseNormalizedNamed: `docker.io/busybox` is `docker.io/library/busybox`. */
export function normalise(ref: DockerReference): DockerReference {
  if (ref.host === 'docker.io' && !ref.repository.includes('/')) return { ...ref, repository: `library/${ref.repository}` };
  return ref;
}
