// A real S3 server process for tests: s3rver (an S3 API over a directory, in Node) on an ephemeral
// loopback port with a temporary directory of its own, stopped and removed on close.
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'minio';
import type { S3BlobStoreOptions } from '../../storage/s3-blob-store.js';
import { patchS3rver, type S3rverFixes, type S3rverInstance } from './s3rver-fixes.js';

// s3rver's own credentials (it accepts only these).
const ACCESS_KEY = 'S3RVER';
const SECRET_KEY = 'S3RVER';
const REGION = 'us-east-1';

interface S3rverOptions {
  address: string;
  port: number;
  directory: string;
  silent: boolean;
  configureBuckets: Array<{ name: string }>;
}

type S3rverConstructor = new (options: S3rverOptions) => S3rverInstance & {
  run(): Promise<AddressInfo>;
  close(): Promise<void>;
};

const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;

export interface TestS3 extends S3rverFixes {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  accessKey: string;
  secretKey: string;
  region: string;
  /** Where s3rver keeps buckets, objects and unfinished multipart uploads. */
  directory: string;
  /** A bucket made when the server started, private to this server. */
  bucket: string;
  /** A plain client on this server, to look at buckets behind a store's back. */
  client: Client;
  /** Every object name in `bucket`, sorted. */
  objectNames(bucket?: string): Promise<string[]>;
  /** Options for createS3BlobStore on `bucket` (or another), overridable. */
  storeOptions(overrides?: Partial<S3BlobStoreOptions>): S3BlobStoreOptions;
  /** REGISTRY_* settings selecting this server's `bucket` as the registry's storage. */
  registryEnv(extra?: Record<string, string>): Record<string, string>;
  close(): Promise<void>;
}

export function randomBucketName(): string {
  return `signet-test-${randomBytes(6).toString('hex')}`;
}

export async function startS3rver(): Promise<TestS3> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'signet-s3rver-'));
  const bucket = randomBucketName();
  const server = new S3rver({
    address: '127.0.0.1',
    port: 0,
    directory,
    silent: true,
    configureBuckets: [{ name: bucket }],
  });
  const fixes = patchS3rver(server);
  let address: AddressInfo;
  try {
    address = await server.run();
  } catch (err) {
    await rm(directory, { recursive: true, force: true });
    throw err;
  }
  if (address.address !== '127.0.0.1' || !Number.isInteger(address.port) || address.port <= 0) {
    await server.close().catch(() => undefined);
    await rm(directory, { recursive: true, force: true });
    throw new Error(`s3rver bound ${address.address}:${address.port}, not an ephemeral loopback port`);
  }
  const endpoint = `http://127.0.0.1:${address.port}`;
  const client = new Client({
    endPoint: '127.0.0.1',
    port: address.port,
    useSSL: false,
    pathStyle: true,
    region: REGION,
    accessKey: ACCESS_KEY,
    secretKey: SECRET_KEY,
  });
  return {
    ...fixes,
    endpoint,
    accessKey: ACCESS_KEY,
    secretKey: SECRET_KEY,
    region: REGION,
    directory,
    bucket,
    client,
    async objectNames(name = bucket) {
      const names: string[] = [];
      for await (const item of client.listObjectsV2(name, '', true) as AsyncIterable<{ name?: string }>) {
        if (item.name !== undefined) names.push(item.name);
      }
      return names.sort();
    },
    storeOptions: (overrides = {}) => ({
      regionEndpoint: endpoint,
      bucket,
      accessKey: ACCESS_KEY,
      secretKey: SECRET_KEY,
      region: REGION,
      ...overrides,
    }),
    registryEnv: (extra = {}) => ({
      REGISTRY_STORAGE: 's3',
      REGISTRY_STORAGE_S3_REGIONENDPOINT: endpoint,
      REGISTRY_STORAGE_S3_BUCKET: bucket,
      REGISTRY_STORAGE_S3_ACCESSKEY: ACCESS_KEY,
      REGISTRY_STORAGE_S3_SECRETKEY: SECRET_KEY,
      REGISTRY_STORAGE_S3_REGION: REGION,
      ...extra,
    }),
    async close() {
      await server.close().catch(() => undefined);
      await rm(directory, { recursive: true, force: true });
    },
  };
}
