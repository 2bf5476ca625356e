// Docker references as signatures name them (`host[:port]/path[:tag][@digest]`), with the grammar
// of distribution's reference package. A signature's identity must name a tag or a digest:
// containers/image rejects name-only references in simple signatures.
//
// Nothing is case-folded: containers/image parses the signed reference with
// reference.ParseNormalizedNamed, which keeps the host as written, and compares the result with
// the pulled reference byte for byte, so `LOCALHOST:5000/app:v1` does not match a pull through
// `localhost:5000`.

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const REFERENCE_RE = new RegExp(
  `^(?:(${DOMAIN})/)?(${PATH_COMPONENT}(?:/${PATH_COMPONENT})*)(?::([\\w][\\w.-]{0,127}))?(?:@(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}))?$`,
);

export interface DockerReference {
  /** Registry host with port, as written; `docker.io` when the reference names none. */
  host: string;
  /** Repository path within the registry. */
  repository: string;
  tag?: string;
  digest?: string;
}

export function parseDockerReference(untrusted: string): DockerReference | undefined {
  if (untrusted.length > 512) return undefined;
  const match = REFERENCE_RE.exec(untrusted);
  if (!match) return undefined;
  let [, domain, path, tag, digest] = match;
  // Like docker's normalisation: a first component is a host only if it looks like one.
  if (domain && !domain.includes('.') && !domain.includes(':') && domain !== 'localhost' && !domain.startsWith('[')) {
    path = `${domain}/${path}`;
    domain = undefined;
  }
  return {
    host: domain ?? 'docker.io',
    repository: path!,
    ...(tag ? { tag } : {}),
    ...(digest ? { digest } : {}),
  };
}
