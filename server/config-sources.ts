// The names settings are given under, in the YAML file and as REGISTRY_* variables, checked against
// the schema's own list, so that no name is dropped in silence:
// - an unknown authentication scheme or storage driver refuses to start (REGISTRY_AUTH=htpassword
//   would otherwise run an open registry, a misspelt driver keep blobs somewhere else), as the Go
//   registry refuses them;
// - a Go registry setting whose absence would weaken security (client certificates, Let's
//   Encrypt) refuses to start too; the Go registry's other settings are named once, as ignored;
// - any other unknown name is a warning naming the nearest known setting (REGISTRY_LOG_LEVLE);
// - the variables Kubernetes gives every container for a Service named `registry`
//   (REGISTRY_PORT=tcp://..., REGISTRY_SERVICE_HOST, REGISTRY_PORT_5000_TCP_ADDR...) are left alone.
// Only names the schema knows are applied.
import type * as z from 'zod';

export interface ConfigNote {
  level: 'warn' | 'info' | 'debug';
  /** A static message; what it is about goes in `fields`. */
  msg: string;
  fields: Record<string, unknown>;
}

export interface SourceReport {
  /** Each one refuses the start: `NAME: what is wrong`. */
  problems: string[];
  notes: ConfigNote[];
}

type Tree = Record<string, unknown>;

/** The settings a schema defines: dotted paths of its leaves and of the sections above them. */
export interface Catalogue {
  leaves: ReadonlySet<string>;
  sections: ReadonlySet<string>;
}

export function catalogue(schema: z.core.$ZodType): Catalogue {
  const leaves = new Set<string>();
  const sections = new Set<string>();
  const walk = (node: z.core.$ZodType, path: string[]): void => {
    const def = node._zod.def;
    if (def.type === 'object') {
      if (path.length > 0) sections.add(path.join('.'));
      for (const [key, child] of Object.entries((def as z.core.$ZodObjectDef).shape)) walk(child, [...path, key]);
    } else if (def.type === 'optional' || def.type === 'default' || def.type === 'prefault' || def.type === 'nullable') {
      walk((def as z.core.$ZodOptionalDef).innerType, path);
    } else if (def.type === 'pipe') {
      walk((def as z.core.$ZodPipeDef).in, path);
    } else {
      leaves.add(path.join('.'));
    }
  };
  walk(schema, []);
  return { leaves, sections };
}

/** `http.tls.key` → REGISTRY_HTTP_TLS_KEY */
function variableName(dotted: string): string {
  return `REGISTRY_${dotted.replace(/\./g, '_').toUpperCase()}`;
}

interface Selector {
  what: string;
  kinds: readonly string[];
  /** The Go registry's other kinds: named as unsupported rather than unknown. */
  goKinds: readonly string[];
  unset: string;
}

// Sections whose keys name the kind chosen, and whose variable holds that name.
const SELECTORS = new Map<string, Selector>([
  ['auth', { what: 'authentication scheme', kinds: ['htpasswd', 'token'], goKinds: ['silly'], unset: 'none at all: no authentication' }],
  [
    'storage',
    {
      what: 'storage driver',
      kinds: ['filesystem', 's3'],
      goKinds: ['azure', 'gcs', 'inmemory', 'swift', 'oss', 's3-aws'],
      unset: 'none at all: the filesystem',
    },
  ],
]);

// Go registry settings Signet does not implement. Without these two a deployment would accept
// clients it used to refuse or serve plain HTTP where it served HTTPS: refused.
const GO_REFUSED: Record<string, string> = {
  'http.tls.clientcas': 'Signet does not check client certificates; terminate mutual TLS in a proxy in front of it',
  'http.tls.letsencrypt': 'Signet does not obtain certificates; give REGISTRY_HTTP_TLS_CERTIFICATE and REGISTRY_HTTP_TLS_KEY',
  // An external token server's tokens would all be refused: said at start-up, not at the first pull.
  'auth.token.rootcertbundle':
    "Signet issues and checks its own tokens and does not accept an external token server's; remove it (see REGISTRY_AUTH_TOKEN_* in the README)",
  'auth.token.jwks':
    "Signet issues and checks its own tokens and does not accept an external token server's; remove it (see REGISTRY_AUTH_TOKEN_* in the README)",
};
// The rest changes nothing a client relies on for security: named once at start-up, ignored.
const GO_IGNORED = [
  'loglevel',
  'log.formatter',
  'log.fields',
  'log.hooks',
  'log.reportcaller',
  'storage.cache',
  'storage.tag',
  'storage.maintenance.uploadpurging',
  'middleware',
  'reporting',
  'http.net',
  'http.prefix',
  'http.secret',
  'http.relativeurls',
  'http.headers',
  'http.http2',
  'http.h2c',
  'http.tls.clientauth',
  'http.tls.minimumtls',
  'http.tls.ciphersuites',
  'http.debug.pprof',
  'http.debug.tls',
  'notifications',
  'redis',
  'health',
  'proxy',
  'validation',
  'compatibility',
  'catalog',
  'auth.token.autoredirect',
  'auth.token.autoredirectpath',
  'auth.token.signingalgorithms',
];

const under = (dotted: string, prefix: string): boolean => dotted === prefix || dotted.startsWith(`${prefix}.`);

/**
 * Kubernetes' service links for a Service named `registry` (or `registry-<x>`): REGISTRY_PORT and
 * REGISTRY_PORT_5000_TCP hold `tcp://10.0.0.11:5000`, then `_PROTO`, `_PORT`, `_ADDR`, and
 * REGISTRY_SERVICE_HOST, REGISTRY_SERVICE_PORT[_<port name>]. A bare `..._PORT` counts only with
 * its URL value, so REGISTRY_HTTP_PORT=5000 (meant as the listen port) is still warned about.
 */
function kubernetesLink(name: string, value: string): boolean {
  if (/^REGISTRY_(?:[A-Z0-9_]+_)?SERVICE_(?:HOST|PORT(?:_[A-Z0-9_]+)?)$/.test(name)) return true;
  if (/^REGISTRY_(?:[A-Z0-9_]+_)?PORT_\d+_(?:TCP|UDP|SCTP)_(?:PROTO|PORT|ADDR)$/.test(name)) return true;
  return /^REGISTRY_(?:[A-Z0-9_]+_)?PORT(?:_\d+_(?:TCP|UDP|SCTP))?$/.test(name) && /^(?:tcp|udp|sctp):\/\//.test(value);
}

/** Edit distance counting a swap of neighbours as one edit (LEVLE → LEVEL). */
function distance(a: string, b: string): number {
  const rows: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 0; j <= b.length; j++) rows[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let best = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) best = Math.min(best, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = best;
    }
  }
  return rows[a.length]![b.length]!;
}

/** The closest candidate, when it is close enough to be what was meant. */
function nearest(name: string, candidates: Iterable<string>, ignoredPrefix = ''): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const candidate of candidates) {
    const d = distance(name, candidate);
    if (d < bestDistance) [best, bestDistance] = [candidate, d];
  }
  const allowed = Math.max(2, Math.floor((name.length - ignoredPrefix.length) * 0.4));
  return bestDistance <= allowed ? best : undefined;
}

function unsupportedKind(selector: Selector, kind: string): string {
  const accepted = `accepted: ${selector.kinds.join(', ')}`;
  if (selector.goKinds.includes(kind)) return `the ${selector.what} "${kind}" is the Go registry's, not supported by Signet; ${accepted}`;
  const guess = nearest(kind, selector.kinds);
  return `unknown ${selector.what} "${kind}"${guess ? ` (did you mean ${guess}?)` : ''}; ${accepted} (${selector.unset})`;
}

function setPath(tree: Tree, path: string[], value: unknown): void {
  let node = tree;
  for (const key of path.slice(0, -1)) {
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Tree;
  }
  node[path[path.length - 1]!] = value;
}

/** Chooses a kind as a YAML `auth: {htpasswd: {}}` would, keeping settings already given for it. */
function select(tree: Tree, section: string, kind: string): void {
  const node = tree[section];
  if (typeof node !== 'object' || node === null || Array.isArray(node)) tree[section] = { [kind]: {} };
  else (node as Tree)[kind] ??= {};
}

/** What to do with a name that is not a setting: a problem, a Go setting, or an unknown one. */
function judgeUnknown(dotted: string, cat: Catalogue): { problem?: string; go?: true } {
  const refused = Object.keys(GO_REFUSED).find((prefix) => under(dotted, prefix));
  if (refused) return { problem: `not supported: ${GO_REFUSED[refused]}` };
  if (GO_IGNORED.some((prefix) => under(dotted, prefix))) return { go: true };
  const [section, kind] = dotted.split('.');
  const selector = section === undefined ? undefined : SELECTORS.get(section);
  if (selector && kind !== undefined && !cat.sections.has(`${section}.${kind}`) && !cat.leaves.has(`${section}.${kind}`)) {
    return { problem: unsupportedKind(selector, kind) };
  }
  return {};
}

/** Applies the known REGISTRY_* variables to `tree`, and reports every other one. */
export function overlayEnvironment(tree: Tree, env: Record<string, string | undefined>, cat: Catalogue, report: SourceReport): void {
  const byVariable = new Map([...cat.leaves].map((dotted) => [variableName(dotted), dotted.split('.')]));
  const ignored: string[] = [];
  const links: string[] = [];
  for (const name of Object.keys(env).sort()) {
    const value = env[name];
    if (!name.startsWith('REGISTRY_') || name === 'REGISTRY_CONFIGURATION_PATH' || value === undefined) continue;
    const path = byVariable.get(name);
    const dotted = name.slice('REGISTRY_'.length).toLowerCase().replace(/_/g, '.');
    const selector = SELECTORS.get(dotted);
    if (path) {
      setPath(tree, path, value);
    } else if (selector) {
      const kind = value.trim().toLowerCase();
      if (selector.kinds.includes(kind)) select(tree, dotted, kind);
      else if (kind !== '') report.problems.push(`${name}: ${unsupportedKind(selector, kind)}`);
    } else if (kubernetesLink(name, value)) {
      links.push(name);
    } else {
      const judged = judgeUnknown(dotted, cat);
      if (judged.problem) report.problems.push(`${name}: ${judged.problem}`);
      else if (judged.go) ignored.push(name);
      else report.notes.push(unknownNote(name, nearest(name, [...byVariable.keys(), 'REGISTRY_AUTH', 'REGISTRY_STORAGE'], 'REGISTRY_')));
    }
  }
  if (ignored.length > 0)
    report.notes.push({
      level: 'warn',
      msg: 'Go registry settings that Signet does not implement are ignored',
      fields: { settings: ignored },
    });
  if (links.length > 0)
    report.notes.push({ level: 'debug', msg: 'Kubernetes service link variables are not settings', fields: { variables: links } });
}

/** Reports the keys of a YAML configuration that are no setting (the file's values are applied by the schema). */
export function checkFileKeys(tree: Tree, file: string, cat: Catalogue, report: SourceReport): void {
  // The Go registry also takes the short form `auth: htpasswd`, `storage: filesystem`.
  for (const [section, selector] of SELECTORS) {
    const kind = tree[section];
    if (typeof kind !== 'string') continue;
    if (selector.kinds.includes(kind)) {
      select(tree, section, kind);
    } else {
      report.problems.push(`${file}: ${section}: ${unsupportedKind(selector, kind)}`);
      tree[section] = {};
    }
  }
  const ignored: string[] = [];
  const walk = (node: Tree, prefix: string): void => {
    for (const [key, value] of Object.entries(node)) {
      const dotted = prefix ? `${prefix}.${key}` : key;
      if (cat.leaves.has(dotted)) continue;
      if (cat.sections.has(dotted)) {
        if (typeof value === 'object' && value !== null && !Array.isArray(value)) walk(value as Tree, dotted);
        continue;
      }
      const judged = judgeUnknown(dotted, cat);
      if (judged.problem) report.problems.push(`${file}: ${dotted}: ${judged.problem}`);
      else if (judged.go) ignored.push(dotted);
      else report.notes.push(unknownNote(dotted, nearest(dotted, cat.leaves), file));
    }
  };
  walk(tree, '');
  if (ignored.length > 0) {
    report.notes.push({
      level: 'warn',
      msg: 'Go registry settings that Signet does not implement are ignored',
      fields: { settings: ignored, file },
    });
  }
}

function unknownNote(setting: string, guess: string | undefined, file?: string): ConfigNote {
  return {
    level: 'warn',
    msg: 'unknown setting ignored',
    fields: { setting, ...(file ? { file } : {}), ...(guess ? { nearest: guess } : {}) },
  };
}
