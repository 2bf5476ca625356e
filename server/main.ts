#!/usr/bin/env -S node --max-semi-space-size=4 --initial-old-space-size=64 --no-allocation-site-pretenuring --expose-gc --v8-pool-size=1 --max-valid-polymorphic-map-count=16
// `signet`: the command-line tool. A plain `signet serve [config]` (npm start, the image) loads only
// the server's modules; anything else (management commands, options, help) goes through commander
// in server/cli.ts. Loading the management commands' modules too cost a restarted registry tens of
// milliseconds before it answered (issue 22: GET /v2/ within 0.5 s of a restart).
const [command, ...rest] = process.argv.slice(2);
if (command === 'serve' && rest.length <= 1 && !rest.some((arg) => arg.startsWith('-'))) {
  const { serve, refuse } = await import('./serve.js');
  const { failureLine } = await import('./failures.js');
  await serve(rest[0]).catch((err: unknown) => refuse(failureLine(err), 1));
} else {
  await import('./cli.js');
}
