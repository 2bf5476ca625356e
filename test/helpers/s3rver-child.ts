// s3rver (with the fixes of s3rver-fixes.ts) as a process of its own, so that a test can kill it
// outright and start it again on the same port and data: `node --import tsx s3rver-child.ts
// <directory> <port> <bucket>`. Prints `{"port": N}` once it listens.
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import { patchS3rver, type S3rverInstance } from './s3rver-fixes.js';

type S3rverConstructor = new (options: object) => S3rverInstance & { run(): Promise<AddressInfo> };
const S3rver = createRequire(import.meta.url)('s3rver') as S3rverConstructor;

const [directory, port, bucket] = process.argv.slice(2);
const server = new S3rver({ address: '127.0.0.1', port: Number(port), directory, silent: true, configureBuckets: [{ name: bucket }] });
patchS3rver(server);
const address = await server.run();
process.stdout.write(`${JSON.stringify({ port: address.port })}\n`);
