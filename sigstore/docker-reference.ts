// Docker references as signatures name them (`host[:port]/path[:tag][@digest]`), with the grammar
// of distribution's reference package. A signature's identity must name a tag or a digest:
// containers/image rejects name-only references.

const DOMAIN_COMPONENT = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = `(?:${DOMAIN_COMPONENT}(?:\\.${DOMAIN_COMPONENT})*|\\[[a-fA-F0-9:]+\\])(?::[0-9]+)?`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|[-]+)[a-z0-9]+)*';
const REFERENCE_RE = new RegExp(
  `^(?:(${DOMAIN})/)?(${PATH_COMPONENT}(?:/${PATH_COMPONENT})*)(?::([\\w][\\w.-]{0,127}))?(?:@(sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128}))?$`,
);

export interface DockerReference {
  /** Registry host with port, lower-cased host; `docker.io` when the reference names none. */
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
  if (domain && domain !== domain.toLowerCase() && !/^[A-Za-z0-9.-]+(:\d+)?$/.test(domain)) return undefined;
  return {
    host: domain ? domain.toLowerCase() : 'docker.io',
    repository: path!,
    ...(tag ? { tag } : {}),
    ...(digest ? { digest } : {}),
  };
}
