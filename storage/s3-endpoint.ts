// Where an S3 store's objects live: the endpoint and the root directory inside the bucket, parsed
// as the Go registry's S3 driver reads them. Kept apart from s3-blob-store.ts so that configuration
// can validate them without loading the S3 client.

/** What a key segment (and a root directory segment) may hold. */
export const KEY_SEGMENT_RE = /^[A-Za-z0-9._-]+$/;

/** The root directory as a key prefix: '' or 'a/b/'. */
export function rootPrefix(rootDirectory = ''): string {
  const trimmed = rootDirectory.replace(/^\/+|\/+$/g, '');
  if (trimmed === '') return '';
  const segments = trimmed.split('/');
  if (segments.some((s) => !KEY_SEGMENT_RE.test(s) || s === '.' || s === '..')) {
    throw new Error(`invalid S3 root directory ${JSON.stringify(rootDirectory)}`);
  }
  return `${trimmed}/`;
}

export interface Endpoint {
  endPoint: string;
  port?: number;
  useSSL: boolean;
  custom: boolean;
}

export function parseEndpoint(regionEndpoint: string | undefined, secure = true): Endpoint {
  if (!regionEndpoint) return { endPoint: 's3.amazonaws.com', useSSL: true, custom: false };
  // As the Go registry (through the AWS SDK) does: a scheme in the endpoint wins over `secure`.
  const url = new URL(regionEndpoint.includes('://') ? regionEndpoint : `${secure ? 'https' : 'http'}://${regionEndpoint}`);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new Error(`S3 endpoint must be http or https, not ${url.protocol}`);
  }
  if (url.pathname !== '/' || url.search || url.hash || url.username || url.password) {
    throw new Error('S3 endpoint must be a scheme, host and port only');
  }
  return {
    endPoint: url.hostname.replace(/^\[|\]$/g, ''),
    ...(url.port ? { port: Number(url.port) } : {}),
    useSSL: url.protocol === 'https:',
    custom: true,
  };
}
