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
 * (`host[:port]`), or a repository name with an explicit host and neither tag nor digest. Also
 * refused: a first component that containers/image does not read as a host (no `.` or `:`, not
 * `localhost`) and `index.docker.io`: every name remapped under them is not canonical, so the
 * exported policy could accept no signature at all (see remappedRepository).
 */
export function signedPrefixProblem(untrusted: string): string | undefined {
  const host = untrusted.split('/')[0] ?? '';
  if (host === LEGACY_DOCKER_HOST || (!host.includes('.') && !host.includes(':') && host !== 'localhost')) {
    return `expected a registry host first (with a "." or ":", or localhost; not ${LEGACY_DOCKER_HOST}): containers/image reads ${JSON.stringify(host)} otherwise`;
  }
  if (DOMAIN_RE.test(untrusted)) return undefined;
  const slash = untrusted.indexOf('/');
  const ref = parseDockerReference(untrusted);
  if (slash < 0 || !ref || ref.tag !== undefined || ref.digest !== undefined || `${ref.host}/${ref.repository}` !== untrusted) {
    return 'expected host[:port] or host[:port]/namespace, as signatures name the upstream (no tag, no digest, lower-case path)';
  }
  return undefined;
}

/**
 * The repository the signature must name for a pull of `repository` from mirror project `project`;
 * undefined when the name does not fall under the prefix (it always does for the project's own
 * repositories); or, as a string, why no signature can match it. containers/image re-parses the
 * remapped name with reference.ParseNamed, which refuses a name that is not canonical, and the
 * match then fails whatever the signature says (signature/policy_reference_match.go,
 * remapReferencePrefix): `docker.io/busybox` (canonical: `docker.io/library/busybox`), from
 * mirror project `hub` with signedPrefix `docker.io`, is one.
 */
export function remappedRepository(repository: string, project: string, signedPrefix: string): DockerReference | string | undefined {
  if (repository !== project && !repository.startsWith(`${project}/`)) return undefined;
  const remapped = `${signedPrefix}${repository.slice(project.length)}`;
  if (!remapped.includes('/')) return undefined;
  const parsed = parseDockerReference(remapped);
  const canonical = parsed && normalise(parsed);
  if (!canonical || `${canonical.host}/${canonical.repository}` !== remapped) {
    const read = canonical ? `, which containers/image reads as ${canonical.host}/${canonical.repository}` : '';
    return `${repository} remaps to ${remapped}${read}: not a canonical name, so remapIdentity accepts no signature for it`;
  }
  return canonical;
}

const LEGACY_DOCKER_HOST = 'index.docker.io';

/**
 * containers/image's ParseNormalizedNamed (docker/reference, SplitDockerDomain):
 * `index.docker.io` is `docker.io`, and `docker.io/busybox` is `docker.io/library/busybox`.
 */
export function normalise(ref: DockerReference): DockerReference {
  const host = ref.host === LEGACY_DOCKER_HOST ? 'docker.io' : ref.host;
  if (host === 'docker.io' && !ref.repository.includes('/')) return { ...ref, host, repository: `library/${ref.repository}` };
  return { ...ref, host };
}
