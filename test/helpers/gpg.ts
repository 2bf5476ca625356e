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
  /** Signing subkey fingerprint, when the key was made with one. */
  subkeyFingerprint?: string;
  /** Primary key fingerprint, 40 upper-case hex digits, as `--sign-by` takes it. */
  fingerprint: string;
  /** `gpg --export` of the key (binary), for policy.json's keyPath and `signet key add`. */
  publicKeyFile: string;
  /** process.env with GNUPGHOME set to this home, over `base` when given. */
  env(base?: NodeJS.ProcessEnv): NodeJS.ProcessEnv;
  gpg(args: string[], input?: string): Promise<RunResult>;
  /**
   * Makes every later signature (skopeo and podman sign through gpgme, which runs gpg) dated as if
   * the clock read `epochSeconds` at this moment, the clock then running on (gpg.conf
   * `faked-system-time`); `undefined` goes back to the real clock.
   */
  fakeTime(epochSeconds: number | undefined): Promise<void>;
  /** Revokes the signing subkey and writes the new export to `publicKeyFile` (as gpg --edit-key revkey). */
  revokeSigningSubkey(): Promise<void>;
  close(): Promise<void>;
}

export interface GpgKeyOptions {
  /** Create the key as if the clock read this (epoch seconds). */
  createdAt?: number;
  /** gpg's expiry for the primary key (`never`, `1d`, ...); the primary signs when no subkey is asked for. */
  expires?: string;
  /** Make a certify-only primary key with a signing subkey expiring so (`never`, `1d`, ...). */
  signingSubkey?: string;
}

export async function createGpgKey(name: string, email = 'signer@example.com', options: GpgKeyOptions = {}): Promise<GpgKey> {
  const home = await mkdtemp('/tmp/sg-');
  const env = (base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv => ({ ...base, GNUPGHOME: home });
  const gpg = (args: string[], input?: string): Promise<RunResult> =>
    run('gpg', ['--batch', '--no-tty', ...args], { env: env(), timeoutMs: 60_000, ...(input === undefined ? {} : { input }) });
  const close = async (): Promise<void> => {
    await run('gpgconf', ['--kill', 'all'], { env: env(), timeoutMs: 20_000 }).catch(() => undefined);
    await rm(home, { recursive: true, force: true, maxRetries: 3 });
  };
  const conf = path.join(home, 'gpg.conf');
  const fakeTime = async (epochSeconds: number | undefined): Promise<void> => {
    await writeFile(conf, epochSeconds === undefined ? '' : `faked-system-time ${epochSeconds}\n`);
  };
  try {
    const at = options.createdAt === undefined ? [] : ['--faked-system-time', String(options.createdAt)];
    const usage = options.signingSubkey === undefined ? 'sign' : 'cert';
    await gpg([...at, '--passphrase', '', '--quick-gen-key', `${name} <${email}>`, 'ed25519', usage, options.expires ?? 'never']);
    const fingerprints = async (): Promise<string[]> =>
      [...(await gpg(['--with-colons', '--list-keys'])).stdout.matchAll(/^fpr:+([0-9A-F]{40}):/gm)].map((m) => m[1]!);
    const [fingerprint] = await fingerprints();
    if (!fingerprint) throw new Error('gpg --list-keys shows no fingerprint');
    if (options.signingSubkey !== undefined) {
      await gpg([...at, '--passphrase', '', '--quick-add-key', fingerprint, 'ed25519', 'sign', options.signingSubkey]);
    }
    const subkeyFingerprint = (await fingerprints())[1];
    const publicKeyFile = path.join(home, 'public.gpg');
    const exportKey = async (): Promise<void> => {
      await gpg(['--yes', '--output', publicKeyFile, '--export', fingerprint]);
    };
    await exportKey();
    const revokeSigningSubkey = async (): Promise<void> => {
      // key 1, revkey, confirm, reason 0 (none), empty description, confirm, save.
      await gpg(
        ['--yes', '--pinentry-mode', 'loopback', '--passphrase', '', '--command-fd', '0', '--edit-key', fingerprint],
        'key 1\nrevkey\ny\n0\n\ny\nsave\n',
      );
      await exportKey();
    };
    return {
      home,
      fingerprint,
      ...(subkeyFingerprint ? { subkeyFingerprint } : {}),
      publicKeyFile,
      env,
      gpg,
      fakeTime,
      revokeSigningSubkey,
      close,
    };
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
