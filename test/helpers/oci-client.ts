// A small OCI distribution client over fetch for HTTP tests: just enough to push and pull.
import { blobOf, type Blob, type Image } from './oci-layout.js';

export interface OciErrorBody {
  errors: { code: string; message: string; detail?: unknown }[];
}

export async function errorCode(res: Response): Promise<string | undefined> {
  const body = (await res.json()) as OciErrorBody;
  return body.errors[0]?.code;
}

export function createClient(base: string, headers: Record<string, string> = {}) {
  const request = (path: string, init: RequestInit = {}): Promise<Response> =>
    fetch(`${base}${path}`, { ...init, headers: { ...headers, ...(init.headers as Record<string, string> | undefined) } });

  return {
    request,

    /** Monolithic push: POST ?digest= with the whole body. */
    async pushBlob(name: string, blob: Pick<Blob, 'data' | 'digest'>): Promise<Response> {
      return request(`/v2/${name}/blobs/uploads/?digest=${blob.digest}`, {
        method: 'POST',
        body: new Uint8Array(blob.data),
        headers: { 'Content-Type': 'application/octet-stream' },
      });
    },

    /** POST, then one PATCH per chunk with Content-Range, then PUT ?digest=. */
    async pushChunked(name: string, blob: Pick<Blob, 'data' | 'digest'>, chunkSize: number): Promise<Response> {
      const started = await request(`/v2/${name}/blobs/uploads/`, { method: 'POST' });
      if (started.status !== 202) return started;
      let location = started.headers.get('location')!;
      for (let offset = 0; offset < blob.data.length; offset += chunkSize) {
        const chunk = blob.data.subarray(offset, offset + chunkSize);
        const res = await request(location, {
          method: 'PATCH',
          body: new Uint8Array(chunk),
          headers: {
            'Content-Type': 'application/octet-stream',
            'Content-Range': `${offset}-${offset + chunk.length - 1}`,
          },
        });
        if (res.status !== 202) return res;
        location = res.headers.get('location')!;
      }
      return request(`${location}?digest=${blob.digest}`, { method: 'PUT' });
    },

    async pushManifest(name: string, reference: string, manifest: Blob): Promise<Response> {
      return request(`/v2/${name}/manifests/${reference}`, {
        method: 'PUT',
        body: new Uint8Array(manifest.data),
        headers: { 'Content-Type': manifest.mediaType },
      });
    },

    /** Pushes config, layers and manifest; returns the manifest PUT response. */
    async pushImage(name: string, image: Image, reference: string = image.manifest.digest): Promise<Response> {
      for (const blob of [image.config, ...image.layers]) {
        const res = await this.pushBlob(name, blob);
        if (res.status !== 201) throw new Error(`blob push failed: ${res.status} ${await res.text()}`);
      }
      return this.pushManifest(name, reference, image.manifest);
    },

    async getManifest(name: string, reference: string, accept?: string): Promise<Response> {
      return request(`/v2/${name}/manifests/${reference}`, {
        headers: {
          Accept:
            accept ??
            [
              'application/vnd.oci.image.manifest.v1+json',
              'application/vnd.oci.image.index.v1+json',
              'application/vnd.docker.distribution.manifest.v2+json',
              'application/vnd.docker.distribution.manifest.list.v2+json',
            ].join(', '),
        },
      });
    },
  };
}

export function jsonBlob(value: unknown, mediaType: string): Blob {
  return blobOf(Buffer.from(JSON.stringify(value)), mediaType);
}
