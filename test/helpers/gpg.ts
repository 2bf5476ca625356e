// GnuPG keys of a test's own, for the real signing clients (skopeo and podman --sign-by, which sign
// through gpgme): a GNUPGHOME under a short temporary path (gpg-agent's socket lives there, and
// unix socket paths are limited to ~100 bytes), an ed25519 signing key without passphrase, its
// exported public key for trust policies and `signet key add`. close() stops the agent this home
// started (`gpgconf --kill all` with this GNUPGHOME only) and removes the directory.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { run, type RunResult } from './run.js';

export interface GpgKey {
  home: string;
  /** Primary key fingerprint, 40 upper-case hex digits, as `--sign-by` takes it. */
  fingerprint: string;
  /** `gpg --export` of the key (binary), for policy.json's keyPath and `signet key add`. */
  publicKeyFile: string;
  /** process.env with GNUPGHOME set to this home, over `base` when given. */
  env(base?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  gpg(args: string[], input?: string): Promise<RunResult>;
  close(): Promise<void>;
}

export async function createGpgKey(name: string, email = 'signer@example.com'): Promise<GpgKey> {
  const home = await mkdtemp('/tmp/sg-');
  const env = (base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv => ({ ...base, GNUPGHOME: home });
  const gpg = (args: string[], input?: string): Promise<RunResult> =>
    run('gpg', ['--batch', '--no-tty', ...args], { env: env(), timeoutMs: 60_000, ...(input === undefined ? {} : { input }) });
  const close = async (): Promise<void> => {
    await run('gpgconf', ['--kill', 'all'], { env: env(), timeoutMs: 20_000 }).catch(() => undefined);
    await rm(home, { recursive: true, force: true, maxRetries: 3 });
  };
  try {
    await gpg(['--passphrase', '', '--quick-gen-key', `${name} <${email}>`, 'ed25519', 'sign', 'never']);
    const { stdout } = await gpg(['--with-colons', '--list-keys']);
    const fingerprint = /^fpr:+([0-9A-F]{40}):/m.exec(stdout)?.[1];
    if (!fingerprint) throw new Error(`no fingerprint in gpg --list-keys:\n${stdout}`);
    const publicKeyFile = path.join(home, 'public.gpg');
    await gpg(['--output', publicKeyFile, '--export', fingerprint]);
    return { home, fingerprint, publicKeyFile, env, gpg, close };
  } catch (err) {
    await close();
    throw err;
  }
}

/**
 * A containers-policy.json that rejects everything except images under `scopes` (docker transport,
 * `host:port[/namespace]`) signed by the key in `keyPath`.
 */
export async function writeSignedByPolicy(file: string, scopes: string[], keyPath: string): Promise<string> {
  const signedBy = [{ type: 'signedBy', keyType: 'GPGKeys', keyPath }];
  const policy = {
    default: [{ type: 'reject' }],
    transports: {
      docker: Object.fromEntries(scopes.map((scope) => [scope, signedBy])),
      // Local sources (oci: layouts pushed by the tests themselves) need no signature.
      oci: { '': [{ type: 'insecureAcceptAnything' }] },
      'containers-storage': { '': [{ type: 'insecureAcceptAnything' }] },
    },
  };
  await writeFile(file, `${JSON.stringify(policy, null, 2)}\n`);
  return file;
}
