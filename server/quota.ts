// Per-project storage quotas, as Harbor's: a blob upload or mount, or a manifest push, that would
// take a project past its quota is refused with 403 DENIED (Harbor's answer), with the figures in
// the message. Usage is the distinct blobs linked in the project's repositories plus its manifests,
// read from the database when something is about to be linked. Content the project already holds
// adds nothing and is always accepted.
//
// What a check lets through is held in the database until its content is linked
// (storage/quota-store.ts), so uploads finishing at once are judged one after the other, on one
// replica or on several sharing a PostgreSQL server: 60 parallel PUTs of 90 KB each all passed a
// 100 KB quota before holds existed, and three replicas with in-process holds let 271 % of a quota
// through (adversarial testing).
import { projectOf } from '../auth/authorize.js';
import type { Logger } from './logging.js';
import type { ProjectStore } from '../storage/project-store.js';
import type { QuotaStore } from '../storage/quota-store.js';
import { OciError } from './errors.js';

/**
 * Releases what a quota check held (idempotent, never rejects); call it once the link committed or
 * failed. Awaited, so a client's retry after a failure is judged without the failed attempt's hold.
 */
export type QuotaRelease = () => Promise<void>;

export interface QuotaCheck {
  /**
   * Throws DENIED when linking `size` more bytes of `digest` into the repository would take its
   * project past its quota; otherwise holds them until released.
   */
  (repository: string, digest: string, size: number, kind?: 'blob' | 'manifest'): Promise<QuotaRelease>;
}

const NOTHING_HELD: QuotaRelease = () => Promise.resolve();

/** Harbor's answer to content past a project's quota (403 DENIED), with the figures. */
function quotaExceeded(
  project: string,
  usedBytes: number,
  quotaBytes: number,
  kind: 'blob' | 'manifest',
  size: number,
  atLeast = false,
): OciError {
  return new OciError(
    'DENIED',
    `quota exceeded: project ${project} uses ${usedBytes} of ${quotaBytes} bytes; this ${kind} needs ${atLeast ? 'at least ' : ''}${size} more`,
    { project, usedBytes, quotaBytes, [kind === 'blob' ? 'blobBytes' : 'manifestBytes']: size },
  );
}

/** How many bytes of a blob may stream in, for bounding them while they arrive. */
export interface QuotaRoom {
  bytes: number;
  /** Says why, for messages: "the 5 bytes left in project p's quota". */
  why: string;
  /** Whether the project holds the blob already: then `bytes` is its size, and the quota does not come into it. */
  held: boolean;
  /** The refusal of `size` bytes, or of at least `size`. */
  error(size: number, atLeast?: boolean): OciError;
}

/**
 * How many bytes of a blob may stream into the repository, in a project with a quota (undefined
 * without one): bytes past it could never be linked, so an upload or a mirror's fetch is cut there
 * instead of filling the disk first (a single unfinished upload took any number of bytes; only
 * linking was bounded).
 *   - `digest` unknown (a PATCH): the project's whole quota, read from the cached project, since no
 *     larger blob is ever linked; not what is left of it, since the bytes may turn out to be a blob
 *     the project holds, which adds nothing (docker, podman and skopeo push a layer with POST, PATCH
 *     and PUT when they know of no repository to mount it from).
 *   - `digest` held by the project: its size, the only length that can match it.
 *   - `digest` new to the project: what is left of the quota, counting what every replica holds.
 */
export type QuotaRoomCheck = (repository: string, digest?: string) => Promise<QuotaRoom | undefined>;

export function createQuotaRoom(deps: { projects: Pick<ProjectStore, 'find'>; holds: QuotaStore }): QuotaRoomCheck {
  return async (repository, digest) => {
    const project = await deps.projects.find(projectOf(repository));
    if (!project || project.quotaBytes === null) return undefined;
    const name = project.name;
    const quotaBytes = Number(project.quotaBytes);
    if (digest === undefined) {
      return {
        bytes: quotaBytes,
        why: `project ${name}'s quota of ${quotaBytes} bytes`,
        held: false,
        error: (size, atLeast = false) =>
          new OciError(
            'DENIED',
            `quota exceeded: project ${name} has a quota of ${quotaBytes} bytes; this upload has ${atLeast ? `more than ${quotaBytes}` : size} bytes`,
            { project: name, quotaBytes, blobBytes: size },
          ),
      };
    }
    const counted = await deps.holds.counted(name, digest);
    if (counted.linkedSize !== undefined) {
      const size = counted.linkedSize;
      return {
        bytes: size,
        why: `the ${size} bytes of ${digest}`,
        held: true,
        error: (sent, atLeast = false) =>
          new OciError('SIZE_INVALID', `${digest} is ${size} bytes; this upload has ${atLeast ? 'more' : sent}`, { digest, size }),
      };
    }
    const bytes = Math.max(quotaBytes - counted.bytes, 0);
    return {
      bytes,
      why: `the ${bytes} bytes left in project ${name}'s quota`,
      held: false,
      error: (size, atLeast = false) => quotaExceeded(name, counted.bytes, quotaBytes, 'blob', size, atLeast),
    };
  };
}

export function createQuotaCheck(deps: { projects: Pick<ProjectStore, 'find'>; holds: QuotaStore; log: Logger }): QuotaCheck {
  const { projects, holds, log } = deps;
  return async (repository, digest, size, kind = 'blob') => {
    // The cached look-up spares projects without a quota the database round trips.
    const project = await projects.find(projectOf(repository));
    if (!project || project.quotaBytes === null) return NOTHING_HELD;
    const name = project.name;
    const answer = await holds.hold(name, { repository, digest, size, kind });
    if (answer.outcome === 'free') return NOTHING_HELD;
    if (answer.outcome === 'refused') throw quotaExceeded(name, answer.usedBytes, answer.quotaBytes, kind, size);
    let released: Promise<void> | undefined;
    return () =>
      // A hold whose content is linked counts no more; one left behind by a failed removal (its
      // request failed too) counts until this replica's heartbeat stops.
      (released ??= holds.release(answer.id).catch((err: unknown) => log.warn({ err, project: name }, 'could not remove a quota hold')));
  };
}
