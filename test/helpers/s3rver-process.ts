// A real S3 server (s3rver) in a child process, to kill under a running registry and start again on
// the same port and data, as an object store that crashes and comes back.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { randomBucketName } from './s3rver.js';

export interface S3rverProcess {
  endpoint: string;
  bucket: string;
  /** REGISTRY_* settings selecting this server's bucket. */
  registryEnv(extra?: Record<string, string>): Record<string, string>;
  /** SIGKILL, and wait until it is gone. */
  kill(): Promise<void>;
  /** Starts it again on the same port and data. */
  start(): Promise<void>;
  close(): Promise<void>;
}

const CHILD = path.resolve('test/helpers/s3rver-child.ts');

function spawnChild(directory: string, port: number, bucket: string): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, directory, String(port), bucket], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`s3rver exited with ${code}: ${stderr}`)));
    createInterface({ input: child.stdout }).once('line', (line) => resolve({ child, port: (JSON.parse(line) as { port: number }).port }));
  });
}

export async function startS3rverProcess(): Promise<S3rverProcess> {
  const directory = await mkdtemp(path.join(os.tmpdir(), 'signet-s3rver-process-'));
  const bucket = randomBucketName();
  let { child, port } = await spawnChild(directory, 0, bucket);
  const endpoint = `http://127.0.0.1:${port}`;
  const instance: S3rverProcess = {
    endpoint,
    bucket,
    registryEnv: (extra = {}) => ({
      REGISTRY_STORAGE: 's3',
      REGISTRY_STORAGE_S3_REGIONENDPOINT: endpoint,
      REGISTRY_STORAGE_S3_BUCKET: bucket,
      REGISTRY_STORAGE_S3_ACCESSKEY: 'S3RVER',
      REGISTRY_STORAGE_S3_SECRETKEY: 'S3RVER',
      REGISTRY_STORAGE_S3_REGION: 'us-east-1',
      ...extra,
    }),
    async kill() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGKILL');
      await exited;
    },
    async start() {
      ({ child, port } = await spawnChild(directory, port, bucket));
    },
    async close() {
      await instance.kill();
      await rm(directory, { recursive: true, force: true });
    },
  };
  return instance;
}
