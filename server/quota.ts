// Per-project storage quotas, as Harbor's: a blob upload or mount that would take a project past
// its quota is refused with 403 DENIED (Harbor's answer), with the figures in the message. Usage
// is the distinct blobs linked in the project's repositories plus its manifests, computed when a
// blob is about to be linked, so it is a soft limit: two uploads finishing at the same moment may
// both pass. A blob the project already holds adds nothing and is always accepted.
import { projectOf } from '../auth/authorize.js';
import type { ProjectStore } from '../storage/project-store.js';
import { OciError } from './errors.js';

export type QuotaCheck = (repository: string, digest: string, size: number) => Promise<void>;

export function createQuotaCheck(projects: ProjectStore): QuotaCheck {
  return async (repository, digest, size) => {
    const project = await projects.find(projectOf(repository));
    if (!project || project.quotaBytes === null) return;
    const { usedBytes, linked } = await projects.usage(project.name, digest);
    if (linked || usedBytes + size <= project.quotaBytes) return;
    throw new OciError(
      'DENIED',
      `quota exceeded: project ${project.name} uses ${usedBytes} of ${project.quotaBytes} bytes; this blob needs ${size} more`,
      { project: project.name, usedBytes, quotaBytes: project.quotaBytes, blobBytes: size },
    );
  };
}
