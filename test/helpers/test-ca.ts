// A CA and a server certificate for 127.0.0.1, localhost and upstream.test (a name only a test's
// forward proxy resolves), made with openssl for a test: the
// CA's certificate is what a client is told to trust (NODE_EXTRA_CA_CERTS, skopeo's cert dir).
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);

/** Writes ca.crt, ca.key, server.crt and server.key into `into`. */
export async function makeTestCertificates(into: string): Promise<void> {
  const o = (args: string[]) => run('openssl', args, { cwd: into });
  await o([
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=Signet Test CA',
    '-keyout',
    'ca.key',
    '-out',
    'ca.crt',
  ]);
  await o(['req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', 'server.key', '-out', 'server.csr']);
  await writeFile(path.join(into, 'san.ext'), 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:upstream.test\n');
  await o([
    'x509',
    '-req',
    '-in',
    'server.csr',
    '-CA',
    'ca.crt',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    'san.ext',
    '-out',
    'server.crt',
  ]);
}
