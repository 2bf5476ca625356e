// The distribution spec's grammars for repository names and tags. Here, below the server and the
// mirror, because names come from clients (server/oci-names.ts) and from upstream registries
// (mirror/upstream.ts), and the database holds only names these accept.

// path-component ("/" path-component)*, path-component = [a-z0-9]+ (separator [a-z0-9]+)*
const NAME_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:\/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$/;
/** One path-component: a project's name (the first component of its repositories'), a robot's short name. */
const COMPONENT_RE = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;
/** A tag; the same grammar as the CHECK constraint on tags.name (storage/migrations/011_tag_names.sql). */
const TAG_RE = /^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$/;
/** distribution's limit on the whole repository name. */
const NAME_MAX = 255;

export function isValidName(untrusted: string): boolean {
  return untrusted.length <= NAME_MAX && NAME_RE.test(untrusted);
}

/** A project name: one path-component, at most as long as a whole repository name. */
export function isValidProjectName(untrusted: string): boolean {
  return untrusted.length <= NAME_MAX && COMPONENT_RE.test(untrusted);
}

/** A robot account's short name (`robot$<project>+<name>`): one path-component of at most 64 characters. */
export function isValidRobotName(untrusted: string): boolean {
  return untrusted.length <= 64 && COMPONENT_RE.test(untrusted);
}

export function isValidTag(untrusted: string): boolean {
  return TAG_RE.test(untrusted);
}
