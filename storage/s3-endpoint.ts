// Where an S3 store's objects live: the endpoint and the root directory inside the bucket, parsed
// as the Go registry's S3 driver reads them. Kept apart from s3-blob-store.ts so that configuration
// can validate them without loading the S3 client.
import { InvalidStorageKeyError } from './errors.js';

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

/**
 * Why S3 would refuse a bucket name, or `undefined`: the naming rules that AWS S3 and MinIO
 * enforce, and that the minio client checks before every request (so a registry started with
 * such a name would fail every push).
 */
export function bucketNameProblem(name: string): string | undefined {
  if (name.length < 3 || name.length > 63) return 'S3 bucket names are 3 to 63 characters long';
  if (!/^[a-z0-9.-]+$/.test(name)) return 'S3 bucket names hold only lower-case letters, digits, dots and hyphens';
  if (!/^[a-z0-9].*[a-z0-9]$/.test(name)) return 'S3 bucket names begin and end with a letter or digit';
  if (/\.\.|\.-|-\./.test(name)) return 'S3 bucket names have no two dots, or a dot and a hyphen, side by side';
  if (/\d+\.\d+\.\d+\.\d+/.test(name)) return 'S3 bucket names do not look like an IP address';
  return undefined;
}

/** An AWS region name: us-east-1, eu-central-2, us-gov-west-1, cn-north-1. */
const AWS_REGION_RE = /^[a-z]{2}(-[a-z]+)+-\d+$/;
/** The region an AWS S3 endpoint names: s3.eu-west-1.amazonaws.com, s3-fips.us-east-2.amazonaws.com. */
const AWS_ENDPOINT_REGION_RE = /(?:^|\.)s3(?:-fips)?(?:\.dualstack)?[.-]([a-z]{2}(?:-[a-z]+)+-\d+)\.amazonaws\.com(?:\.cn)?$/;

/**
 * Why the region cannot work with the endpoint, or `undefined`: on AWS S3 itself (no endpoint) it
 * must be an AWS region, and an AWS endpoint that names a region must name this one (requests are
 * signed for the region, and S3 refuses a signature for another). Like every configuration
 * message, it does not repeat the value given.
 */
export function regionProblem(region: string, regionEndpoint: string | undefined, secure = true): string | undefined {
  if (regionEndpoint === undefined) {
    return AWS_REGION_RE.test(region)
      ? undefined
      : 'expected an AWS region name such as us-east-1 (for another S3 service, set REGISTRY_STORAGE_S3_REGIONENDPOINT)';
  }
  let host: string;
  try {
    host = parseEndpoint(regionEndpoint, secure).endPoint.toLowerCase();
  } catch {
    return undefined; // the endpoint's own problem, reported with it
  }
  const named = AWS_ENDPOINT_REGION_RE.exec(host)?.[1];
  return named !== undefined && named !== region
    ? `does not match REGISTRY_STORAGE_S3_REGIONENDPOINT, an AWS endpoint in ${named}: set REGISTRY_STORAGE_S3_REGION=${named}`
    : undefined;
}

/** What may follow the last slash of a listing prefix: the start of a key segment. */
export const PARTIAL_SEGMENT_RE = /^[A-Za-z0-9._-]*$/;
// The filesystem store keeps temporary files under this top-level name and refuses it as a key;
// refusing it here too keeps one key space for both stores.
const RESERVED_SEGMENT = '_tmp';

export function isValidKey(key: string): boolean {
  const segments = key.split('/');
  return segments.every((s) => KEY_SEGMENT_RE.test(s) && s !== '.' && s !== '..') && segments[0] !== RESERVED_SEGMENT;
}

export function checkKey(key: string): void {
  if (!isValidKey(key)) throw new InvalidStorageKeyError(key);
}
