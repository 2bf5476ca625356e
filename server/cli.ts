// `signet` with a command other than a plain `serve` (server/main.ts): the management commands,
// HTTP clients of a running registry, and `serve` with its help.
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { registerAdminCommands, registerSignatureCommands } from './admin-cli.js';
import { createApiClient } from './api-client.js';
import { failureLine, UserFacingError } from './failures.js';
import { registerGcCommand } from './gc-cli.js';
import { registerRobotCommands } from './robot-cli.js';
import { registerMirrorCommands } from './mirror-cli.js';
import { signetVersion } from './version.js';

const program = new Command();
program.name('signet').description('OCI container registry with an integrated signature store').version(signetVersion());
// The management commands are HTTP clients: their settings are a client's, not the server's.
program
  .option('--registry <url>', 'registry for management commands (SIGNET_REGISTRY)', process.env.SIGNET_REGISTRY ?? 'http://localhost:5000')
  .option('--user <name>', 'user for management commands (SIGNET_USER; password in SIGNET_PASSWORD)', process.env.SIGNET_USER)
  .option('--password-stdin', 'read the password from standard input');
/** The password: from standard input with --password-stdin, else SIGNET_PASSWORD; never an empty one. */
function readPassword(user: string | undefined, fromStdin: boolean | undefined): string | undefined {
  if (fromStdin) {
    if (user === undefined) throw new UserFacingError('--password-stdin needs a user: give --user NAME (or SIGNET_USER)');
    const password = readFileSync(0, 'utf8').replace(/\r?\n$/, '');
    if (!password) throw new UserFacingError('--password-stdin read no password from standard input');
    return password;
  }
  const password = process.env.SIGNET_PASSWORD || undefined;
  if (user !== undefined && password === undefined) {
    throw new UserFacingError(`no password given for user ${user}: set SIGNET_PASSWORD, or pipe it to --password-stdin`);
  }
  return password;
}
const apiClient = () => {
  const opts = program.opts<{ registry: string; user?: string; passwordStdin?: boolean }>();
  const user = opts.user || undefined;
  const password = readPassword(user, opts.passwordStdin);
  return createApiClient({ registry: opts.registry, ...(user ? { user } : {}), ...(password ? { password } : {}) });
};
const print = (line: string): void => void process.stdout.write(`${line}\n`);
registerAdminCommands(program, apiClient, print, () => process.env.SIGNET_MIRROR_PASSWORD || undefined);
registerSignatureCommands(program, apiClient, print);
registerGcCommand(program, apiClient, print);
registerRobotCommands(program, apiClient, print);
registerMirrorCommands(program, apiClient, print);

program
  .command('serve')
  .description('run the registry (settings from REGISTRY_* variables and an optional YAML file)')
  .argument('[config]', 'YAML configuration file, as for the Go registry')
  .action(async (config: string | undefined) => (await import('./serve.js')).serve(config));

program.parseAsync(process.argv).catch((err: unknown) => {
  process.stderr.write(`signet: ${failureLine(err)}\n`);
  process.exit(1);
});
