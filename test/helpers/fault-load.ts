// Load for fault tests: a few clients pushing and pulling against registries until told to stop,
// recording every answer, so a test can tell what clients saw while a dependency was away.
import { randomBytes } from 'node:crypto';
import { createClient, type OciErrorBody } from './oci-client.js';
import { makeImage } from './oci-layout.js';
import { sleep } from './wait.js';

export interface Answer {
  replica: number;
  what: string;
  /** The HTTP status, or 0 when the request failed without an answer (a reset, a refused connection). */
  status: number;
  /** The OCI error code of an error answer; `not JSON` for anything else. */
  code?: string;
  retryAfter?: string | null;
  detail?: unknown;
}

export interface Acknowledged {
  repository: string;
  tag: string;
  digest: string;
}

export interface FaultLoad {
  answers: Answer[];
  /** Manifests the registry answered 201 for. */
  acknowledged: Acknowledged[];
  /** Blobs the registry answered 201 for: repository and digest. */
  acknowledgedBlobs: Array<{ repository: string; digest: string }>;
  /** Ends the load after the requests in flight. */
  stop(): Promise<void>;
}

type Client = ReturnType<typeof createClient>;

/** Sends a request and records its answer, reading the whole body. */
async function record(answers: Answer[], replica: number, what: string, request: () => Promise<Response>): Promise<Answer> {
  let res: Response;
  try {
    res = await request();
  } catch {
    const failed = { replica, what, status: 0 };
    answers.push(failed);
    return failed;
  }
  const answer: Answer = { replica, what, status: res.status };
  const text = await res.text().catch(() => '');
  if (res.status >= 400) {
    answer.retryAfter = res.headers.get('retry-after');
    try {
      const error = (JSON.parse(text) as OciErrorBody).errors[0];
      answer.code = error?.code;
      answer.detail = error?.detail;
    } catch {
      answer.code = 'not JSON';
    }
  }
  answers.push(answer);
  return answer;
}

/**
 * `workers` loops, each taking turns over the registries: push a small image under a tag of its
 * own, pull the given reference, list tags, HEAD and GET a known blob, and, with `catalog`, list
 * repositories.
 */
export function startFaultLoad(
  urls: string[],
  known: { repository: string; reference: string; blob: string },
  options: { workers?: number; catalog?: boolean } = {},
): FaultLoad {
  const answers: Answer[] = [];
  const acknowledged: Acknowledged[] = [];
  const acknowledgedBlobs: FaultLoad['acknowledgedBlobs'] = [];
  const clients: Client[] = urls.map((url) => createClient(url));
  let stopped = false;
  let turn = 0;

  async function round(worker: number): Promise<void> {
    const replica = turn++ % clients.length;
    const client = clients[replica]!;
    const image = makeImage({ layers: 1 });
    const repository = `${known.repository.split('/')[0]}/load`;
    let pushed = true;
    for (const blob of [image.config, ...image.layers]) {
      if ((await record(answers, replica, 'blob push', () => client.pushBlob(repository, blob))).status === 201) {
        acknowledgedBlobs.push({ repository, digest: blob.digest });
      } else pushed = false;
    }
    if (pushed) {
      const tag = `w${worker}-${randomBytes(4).toString('hex')}`;
      const res = await record(answers, replica, 'manifest push', () => client.pushManifest(repository, tag, image.manifest));
      if (res.status === 201) acknowledged.push({ repository, tag, digest: image.manifest.digest });
    }
    await record(answers, replica, 'manifest pull', () => client.getManifest(known.repository, known.reference));
    await record(answers, replica, 'tags list', () => client.request(`/v2/${known.repository}/tags/list`));
    await record(answers, replica, 'blob head', () => client.request(`/v2/${known.repository}/blobs/${known.blob}`, { method: 'HEAD' }));
    // Ranged: served through the registry even where whole blobs are redirected to S3.
    await record(answers, replica, 'blob get', () =>
      client.request(`/v2/${known.repository}/blobs/${known.blob}`, { headers: { Range: 'bytes=0-' } }),
    );
    if (options.catalog) await record(answers, replica, 'catalog', () => client.request('/v2/_catalog'));
  }

  const loops = Array.from({ length: options.workers ?? 3 }, async (_, worker) => {
    while (!stopped) {
      await round(worker);
      await sleep(20); // a load, not a flood: the machine runs other suites too
    }
  });
  return {
    answers,
    acknowledged,
    acknowledgedBlobs,
    async stop() {
      stopped = true;
      await Promise.all(loops);
    },
  };
}
