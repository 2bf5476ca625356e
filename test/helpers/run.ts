// Runs a client command (skopeo, docker, podman) and fails with everything a reader needs: the
// command line, the exit status or timeout, and the client's own stderr.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

export interface RunOptions {
  env?: NodeJS.ProcessEnv;
  /** Default two minutes: registries clients retry, and docker on vfs is slow. */
  timeoutMs?: number;
  cwd?: string;
  /** Written to the command's stdin, which is then closed (`login --password-stdin`). */
  input?: string;
}

export interface RunResult {
  stdout: string;
  stderr: string;
}

export class CommandError extends Error {
  constructor(
    readonly commandLine: string,
    readonly exitCode: number | string | undefined,
    readonly stdout: string,
    readonly stderr: string,
    timedOut: boolean,
  ) {
    const status = timedOut ? 'timed out' : `exited with ${String(exitCode)}`;
    super(`\`${commandLine}\` ${status}\n--- stderr ---\n${stderr.trim()}\n--- stdout ---\n${stdout.trim()}`);
    this.name = 'CommandError';
  }
}

interface ExecFailure {
  code?: number | string;
  killed?: boolean;
  signal?: string | null;
  stdout?: string;
  stderr?: string;
}

export async function run(command: string, args: string[], options: RunOptions = {}): Promise<RunResult> {
  try {
    const running = execFileAsync(command, args, {
      env: options.env ?? process.env,
      timeout: options.timeoutMs ?? 120_000,
      killSignal: 'SIGKILL',
      maxBuffer: 64 * 1024 * 1024,
      encoding: 'utf8',
      ...(options.cwd ? { cwd: options.cwd } : {}),
    });
    if (options.input !== undefined) {
      running.child.stdin?.on('error', () => undefined); // EPIPE when the command exits without reading
      running.child.stdin?.end(options.input);
    }
    const { stdout, stderr } = await running;
    return { stdout, stderr };
  } catch (err) {
    const failure = err as ExecFailure;
    if (failure.stdout === undefined && failure.stderr === undefined) throw err; // could not start
    throw new CommandError(
      [command, ...args].join(' '),
      failure.code ?? failure.signal ?? undefined,
      failure.stdout ?? '',
      failure.stderr ?? '',
      failure.killed === true && failure.signal === 'SIGKILL',
    );
  }
}

/** Runs a command that must fail, and returns its failure; a success is an error. */
export async function runExpectingFailure(command: string, args: string[], options: RunOptions = {}): Promise<CommandError> {
  let result: RunResult;
  try {
    result = await run(command, args, options);
  } catch (err) {
    if (err instanceof CommandError) return err;
    throw err;
  }
  throw new Error(`\`${[command, ...args].join(' ')}\` succeeded but should have failed\n${result.stdout}${result.stderr}`);
}
