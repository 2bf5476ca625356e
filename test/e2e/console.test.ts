// The web console in a real browser (Debian's Chromium through playwright-core) against two real
// `signet serve` processes sharing one PostgreSQL database: the flow of issue 18. Sign in; create
// a project; upload a gpg key; push one image signed with `skopeo copy --sign-by` and one
// unsigned; see "verified" and "unsigned"; switch signed-only on behind its preview and see the
// unsigned tag "refused" with the gate's reason; change a member's role; download policy.json and
// have skopeo accept the signed image with it; a registry admin changes a mirror project's settings
// (the upstream password write-only) and its project admin sees them read-only; a guest sees no
// write controls and a forged write is refused; sign out. Robot accounts (issue 20): the robots tab
// creates one, shows its secret once, lists and revokes it; a robot signs in to a read-only session
// of its own project. Screenshots of each main page go to test-output/console/.
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ExecutionContext } from 'ava';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { basic, writeHtpasswd } from '../helpers/auth.js';
import { buildConsole, CHROMIUM, launchChromium, SCREENSHOTS } from '../helpers/browser.js';
import { createSkopeo, type Skopeo } from '../helpers/containers-tools.js';
import { testWithCommands } from '../helpers/env.js';
import { createGpgKey, type GpgKey } from '../helpers/gpg.js';
import { makeImage, writeOciLayout } from '../helpers/oci-layout.js';
import { createTestDatabase, type TestDatabase } from '../helpers/postgres.js';
import { startServerProcess, type ServerProcess } from '../helpers/server-process.js';

interface Context {
  work: string;
  database: TestDatabase;
  servers: ServerProcess[];
  browser: Browser;
  admin: BrowserContext;
  page: Page;
  skopeo: Skopeo;
  signer: GpgKey;
}
const test = testWithCommands<Context>('console browser e2e', [CHROMIUM, 'skopeo', 'gpg', 'gpgconf'], { postgres: true });
type T = ExecutionContext<Context>;
const USERS = { root: 'root-pw', dev: 'dev-pw', visitor: 'visitor-pw' };
const url = (t: T, replica = 0): string => t.context.servers[replica]!.url;
const host = (t: T): string => new URL(url(t)).host;
const shot = (page: Page, name: string) => page.screenshot({ path: path.join(SCREENSHOTS, `${name}.png`), fullPage: true });

test.before(async (t) => {
  const work = await mkdtemp(path.join(os.tmpdir(), 'signet-console-e2e-'));
  t.context.work = work;
  t.context.servers = [];
  await writeHtpasswd(path.join(work, 'htpasswd'), USERS);
  const [database, signer, skopeo] = await Promise.all([
    createTestDatabase(),
    createGpgKey('Console Signer', 'console@example.com'),
    createSkopeo(),
    buildConsole(path.join(work, 'console')),
  ]);
  Object.assign(t.context, { database, signer, skopeo });
  const env = {
    REGISTRY_AUTH: 'htpasswd',
    REGISTRY_AUTH_HTPASSWD_PATH: path.join(work, 'htpasswd'),
    REGISTRY_AUTH_ADMINS: 'root',
    REGISTRY_DATABASE_URL: database.url,
    REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(work, 'storage'),
    REGISTRY_CONSOLE_DIRECTORY: path.join(work, 'console'),
    REGISTRY_LOG_ACCESSLOG_DISABLED: 'true',
  };
  // The first replica applies the migrations; the second starts beside it.
  t.context.servers.push(await startServerProcess(env));
  const [second, browser] = await Promise.all([startServerProcess(env), launchChromium()]);
  t.context.servers.push(second);
  t.context.browser = browser;
  t.context.admin = await browser.newContext({ acceptDownloads: true, viewport: { width: 1200, height: 800 } });
  t.context.page = await t.context.admin.newPage();
});
test.after.always(async (t) => {
  await t.context.browser?.close();
  for (const server of t.context.servers ?? []) await server.kill('SIGTERM');
  await t.context.database?.drop();
  await t.context.skopeo?.close();
  await t.context.signer?.close();
  if (t.context.work) await rm(t.context.work, { recursive: true, force: true });
});

async function signIn(page: Page, base: string, user: string, password = USERS[user as keyof typeof USERS]): Promise<void> {
  await page.goto(`${base}/`);
  await page.getByRole('link', { name: 'Sign in' }).click();
  await page.getByLabel('User name').fill(user);
  await page.getByLabel('Password').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByTestId('user').filter({ hasText: user }).waitFor();
}

async function push(t: T, reference: string, signed: boolean): Promise<void> {
  const layout = path.join(t.context.work, `layout-${reference.replace(/\W/g, '-')}`);
  await mkdir(layout);
  const image = makeImage({ layers: 1 });
  await writeOciLayout(layout, [image], image.manifest, 'v1');
  const sign = signed ? ['--sign-by', t.context.signer.fingerprint] : [];
  await t.context.skopeo.skopeo(
    [
      'copy',
      '--dest-tls-verify=false',
      '--dest-creds',
      `dev:${USERS.dev}`,
      ...sign,
      `oci:${layout}:v1`,
      `docker://${host(t)}/${reference}`,
    ],
    {
      env: t.context.signer.env(t.context.skopeo.env),
    },
  );
}

/** The tag's row on the repository page. */
const row = (page: Page, tag: string) => page.locator(`tr[data-tag="${tag}"]`);

test.serial('an admin signs in, creates a project, adds members and uploads a gpg key', async (t) => {
  const { page } = t.context;
  await page.goto(`${url(t)}/`);
  await shot(page, '01-anonymous');
  await signIn(page, url(t), 'root');
  await page.getByLabel('Name', { exact: true }).fill('web');
  await page.getByRole('button', { name: 'Create project' }).click();
  await page.getByRole('heading', { name: /Project web/ }).waitFor();
  await page.getByRole('link', { name: 'Members' }).click();
  for (const [user, role] of [
    ['dev', 'developer'],
    ['visitor', 'guest'],
  ] as const) {
    await page.getByLabel('User name').fill(user);
    await page.getByLabel('Role', { exact: true }).selectOption(role);
    await page.getByRole('button', { name: 'Add member' }).click();
    await page.getByText(`${user} is now ${role}.`).waitFor();
  }
  await page.getByRole('link', { name: 'Trusted keys' }).click();
  await page.getByLabel(/Upload a key file/).setInputFiles(t.context.signer.publicKeyFile);
  await page.getByText(/was already trusted|added\./).waitFor();
  await page.getByRole('heading', { name: t.context.signer.fingerprint }).waitFor();
  t.truthy(await page.getByText('Console Signer <console@example.com>').count());
  await shot(page, '02-project-keys');
});

test.serial(
  "a signed and an unsigned push show as verified and unsigned; signed-only, after its preview, refuses the unsigned one with the gate's reason",
  async (t) => {
    const { page } = t.context;
    await Promise.all([push(t, 'web/app:signed', true), push(t, 'web/app:unsigned', false)]);
    await page.goto(`${url(t)}/#/r/web/app`);
    await row(page, 'signed').getByTestId('trust-state').filter({ hasText: 'verified' }).waitFor();
    t.is(await row(page, 'unsigned').getByTestId('trust-state').textContent(), 'unsigned');
    t.regex((await row(page, 'signed').textContent()) ?? '', /Console Signer/);
    await shot(page, '03-repository');

    await page.goto(`${url(t)}/#/p/web/settings`);
    await page.getByRole('button', { name: 'Check what signed-only would refuse' }).click();
    const preview = page.getByRole('region', { name: 'Signed-only preview' });
    await preview.getByText('web/app:unsigned', { exact: true }).waitFor();
    t.is(await preview.getByText('web/app:signed', { exact: true }).count(), 0);
    await shot(page, '04-signed-only-preview');
    await preview.getByRole('button', { name: 'Turn signed-only on' }).click();
    await page.getByText('Signed-only is on.').waitFor();

    await page.goto(`${url(t)}/#/r/web/app`);
    await row(page, 'unsigned').getByTestId('gate').filter({ hasText: 'refused' }).waitFor();
    t.is(await row(page, 'signed').getByTestId('gate').textContent(), 'served');
    const reason = (await row(page, 'unsigned').getByTestId('gate-reason').textContent()) ?? '';
    // The same words the gate sends the client that pulls.
    const pulled = await fetch(`${url(t)}/v2/web/app/manifests/unsigned`, {
      headers: { Authorization: basic('dev', USERS.dev), Accept: 'application/vnd.oci.image.manifest.v1+json' },
    });
    t.is(pulled.status, 412);
    t.is(reason, ((await pulled.json()) as { errors: { message: string }[] }).errors[0]?.message ?? '(no message)');
    t.regex(reason, /is not signed/);
    await shot(page, '05-repository-signed-only');
  },
);

test.serial("a member's role is changed from the members page", async (t) => {
  const { page } = t.context;
  await page.goto(`${url(t)}/#/p/web/members`);
  await page.getByLabel('Role of dev').selectOption('maintainer');
  await page.getByText('dev is now maintainer.').waitFor();
  const members = (await (
    await fetch(`${url(t)}/api/v1/projects/web/members`, { headers: { Authorization: basic('root', USERS.root) } })
  ).json()) as {
    members: { user: string; role: string }[];
  };
  t.is(members.members.find((m) => m.user === 'dev')?.role, 'maintainer');
  await shot(page, '06-members');
});

test.serial("a registry admin sees and changes a mirror project's settings; the upstream password is write-only", async (t) => {
  const { page } = t.context;
  const asRoot = (method: string, apiPath: string, body?: unknown) =>
    fetch(`${url(t)}/api/v1${apiPath}`, {
      method,
      headers: { Authorization: basic('root', USERS.root), 'Content-Type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  // Settings only: nothing is pulled, so the upstream need not exist.
  t.is((await asRoot('POST', '/projects', { name: 'mirror', mirror: { upstream: 'https://upstream.example/ns' } })).status, 201);
  // A project admin who is not a registry admin (the guest test looks at the page as them).
  t.is((await asRoot('PUT', '/projects/mirror/members/visitor', { role: 'admin' })).status, 200);
  await page.goto(`${url(t)}/#/p/mirror/settings`);
  await page.getByTestId('mirror-upstream').filter({ hasText: 'https://upstream.example/ns' }).waitFor();
  t.is(await page.getByTestId('mirror-credentials').textContent(), 'none (anonymous)');
  const password = 'console-e2e-upstream-secret';
  await page.getByLabel('Lookaside URL').fill('https://sigs.example/sigstore/');
  await page.getByLabel(/signature API extension/).uncheck();
  await page.getByLabel('Upstream user name').fill('puller');
  await page.getByLabel('Upstream password').fill(password);
  await page.getByRole('button', { name: 'Save mirror settings' }).click();
  await page.getByText('Mirror settings saved.').waitFor();
  await page.getByTestId('mirror-credentials').filter({ hasText: 'set' }).waitFor();
  t.is(await page.getByTestId('mirror-lookaside').textContent(), 'https://sigs.example/sigstore');
  t.is(await page.getByTestId('mirror-extension').textContent(), 'not used');
  t.is(await page.getByLabel('Upstream password').inputValue(), '', 'the password field starts empty again');
  t.false((await page.content()).includes(password));
  const shown = await (await asRoot('GET', '/projects/mirror')).text();
  t.false(shown.includes(password));
  t.like(JSON.parse(shown), {
    mirror: { upstream: 'https://upstream.example/ns', lookaside: 'https://sigs.example/sigstore', useExtension: false, credentials: true },
  });
  await shot(page, '06b-mirror-settings');
});

test.serial('the policy.json downloaded from the console makes skopeo accept the signed image', async (t) => {
  const { page } = t.context;
  await page.goto(`${url(t)}/#/p/web/clients`);
  await page.getByText('OpenShift MachineConfig', { exact: true }).waitFor();
  const [download] = await Promise.all([page.waitForEvent('download'), page.getByRole('link', { name: 'Download policy.json' }).click()]);
  const policyFile = path.join(t.context.work, 'policy.json');
  await download.saveAs(policyFile);
  const policy = JSON.parse(await readFile(policyFile, 'utf8')) as { transports: { docker: Record<string, unknown> } };
  t.truthy(policy.transports.docker[`${host(t)}/web`]);
  await shot(page, '07-configure-clients');
  const out = path.join(t.context.work, 'pulled');
  await t.notThrowsAsync(
    t.context.skopeo.skopeo(
      ['copy', '--src-tls-verify=false', '--src-creds', `dev:${USERS.dev}`, `docker://${host(t)}/web/app:signed`, `dir:${out}`],
      { policy: policyFile },
    ),
  );
});

test.serial('the session is accepted by the other replica; the administration page runs a GC dry run', async (t) => {
  const { page } = t.context;
  // Cookies are per host, not per port: the second replica receives the same cookie.
  await page.goto(`${url(t, 1)}/#/admin`);
  await page.getByTestId('user').filter({ hasText: 'root' }).waitFor();
  await page.getByText('postgresql').waitFor();
  await page.getByRole('button', { name: 'Dry run' }).click();
  await page.getByText(/Dry run: would remove/).waitFor();
  t.regex((await page.getByRole('region', { name: 'Status' }).textContent()) ?? '', /postgresql/);
  // Both replicas, by their heartbeats in the shared database.
  t.is(await page.getByRole('region', { name: 'Status' }).getByRole('listitem').count(), 2);
  await shot(page, '08-admin');
});

test.serial("a guest sees no write controls, and a write forged from the guest's session is refused", async (t) => {
  const context = await t.context.browser.newContext();
  try {
    const page = await context.newPage();
    await signIn(page, url(t), 'visitor');
    await page.goto(`${url(t)}/#/p/web/members`);
    await page.getByRole('cell', { name: 'visitor' }).waitFor();
    t.is(await page.getByRole('button', { name: 'Add member' }).count(), 0);
    t.is(await page.getByRole('combobox').count(), 0);
    t.is(await page.getByRole('link', { name: 'Robots' }).count(), 0, 'robots are for project admins');
    await page.goto(`${url(t)}/#/p/web/keys`);
    await page.getByRole('heading', { name: t.context.signer.fingerprint }).waitFor();
    t.is(await page.getByLabel(/Upload a key file/).count(), 0);
    await page.goto(`${url(t)}/#/p/web/settings`);
    await page.getByRole('heading', { name: 'Signed images only', exact: true }).waitFor();
    t.true(await page.getByRole('checkbox').isDisabled());
    t.is(await page.getByRole('button', { name: /signed-only/ }).count(), 0);
    // Project admin of the mirror, not a registry admin: the mirror settings are read-only.
    await page.goto(`${url(t)}/#/p/mirror/settings`);
    await page.getByTestId('mirror-upstream').filter({ hasText: 'https://upstream.example/ns' }).waitFor();
    await page.getByText('Only registry administrators change mirror settings.').waitFor();
    t.is(await page.getByRole('button', { name: 'Save mirror settings' }).count(), 0);
    t.is(await page.getByLabel('Upstream password').count(), 0);
    await page.goto(`${url(t)}/#/r/web/app`);
    await row(page, 'signed').waitFor();
    t.is(await page.getByRole('button', { name: /Delete/ }).count(), 0);
    await shot(page, '09-guest-repository');
    // Forged: the guest's own session and CSRF token, straight to the API.
    // (A string, not a function: the test's transpiler would add helpers the page does not have.)
    const statuses = await page.evaluate(`(async () => {
      const session = await (await fetch('/api/v1/session')).json();
      const write = (headers) => fetch('/api/v1/projects/web', {
        method: 'PATCH', headers: { 'Content-Type': 'application/json', ...headers }, body: '{"signedOnly":false}',
      }).then((r) => r.status);
      return [await write({ 'X-CSRF-Token': session.csrfToken }), await write({})];
    })()`);
    t.deepEqual(statuses, [403, 403]);
  } finally {
    await context.close();
  }
});

test.serial(
  'the robots tab: a robot is created with its secret shown once, listed, and revoked; its secret then fails on /v2/',
  async (t) => {
    const { page } = t.context;
    await t.context.admin.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url(t) });
    const v2 = async (secret: string): Promise<number> =>
      (await fetch(`${url(t)}/v2/web/app/tags/list`, { headers: { Authorization: basic('robot$web+ci', secret) } })).status;
    await page.goto(`${url(t)}/#/p/web/robots`);
    await page.getByText('This project has no robot accounts.').waitFor();
    await page.getByLabel('Robot name').fill('ci');
    await page.getByLabel('Robot role').selectOption('guest');
    await page.getByLabel('Expires after').selectOption('30');
    await page.getByRole('button', { name: 'Create robot' }).click();
    const panel = page.getByRole('region', { name: 'New robot secret' });
    await panel.getByText('it will not be shown again').waitFor();
    const secret = await panel.getByRole('textbox', { name: 'Secret of robot$web+ci' }).inputValue();
    t.regex(secret, /^[A-Za-z0-9_-]{43}$/);
    await panel.getByRole('button', { name: 'Copy the secret of robot$web+ci' }).click();
    await panel.getByText('Copied', { exact: true }).waitFor();
    t.is(await page.evaluate('navigator.clipboard.readText()'), secret);
    const listed = page.locator('tr[data-robot="robot$web+ci"]');
    t.is(await listed.getByTestId('robot-state').textContent(), 'active');
    t.regex((await listed.textContent()) ?? '', /guest/);
    t.deepEqual(await unlabelled(page), []);
    await shot(page, '11-robots-created');
    t.is(await v2(secret), 200);

    // Dismissed, the secret is nowhere on the page, nor after a reload.
    await panel.getByRole('button', { name: 'I have stored the secret' }).click();
    t.false((await page.content()).includes(secret));
    // The API's refusal is shown, not swallowed.
    await page.getByLabel('Robot name').fill('ci');
    await page.getByRole('button', { name: 'Create robot' }).click();
    await page.getByRole('alert').filter({ hasText: 'project web already has a robot named ci' }).waitFor();
    await page.reload();
    await listed.waitFor();
    t.false((await page.content()).includes(secret));

    await listed.getByRole('button', { name: 'Revoke robot$web+ci…' }).click();
    await listed.getByRole('button', { name: 'Revoke robot$web+ci', exact: true }).click();
    await page.getByText('robot$web+ci is revoked').waitFor();
    await page.getByText('This project has no robot accounts.').waitFor();
    t.is(await v2(secret), 401);
  },
);

test.serial('a robot signs in and reads its own project only; revoked, its session is over', async (t) => {
  const asRoot = (method: string, pathname: string, body?: unknown) =>
    fetch(`${url(t)}${pathname}`, {
      method,
      headers: { Authorization: basic('root', USERS.root), 'Content-Type': 'application/json' },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  // A public project elsewhere: anyone sees it, a robot's session does not.
  t.is((await asRoot('POST', '/api/v1/projects', { name: 'elsewhere', public: true })).status, 201);
  const made = await asRoot('POST', '/api/v1/projects/web/robots', { name: 'viewer', role: 'maintainer', expiresInDays: 1 });
  const robot = (await made.json()) as { name: string; secret: string };
  const context = await t.context.browser.newContext();
  try {
    const page = await context.newPage();
    await page.goto(`${url(t)}/`);
    await page.getByRole('link', { name: 'elsewhere' }).waitFor();
    await page.getByRole('link', { name: 'Sign in' }).click();
    await page.getByLabel('User name').fill(robot.name);
    await page.getByLabel('Password').fill(robot.secret);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('robot-session').filter({ hasText: 'project web' }).waitFor();
    await page.getByRole('link', { name: 'web', exact: true }).waitFor();
    t.is(await page.getByRole('link', { name: 'elsewhere' }).count(), 0);
    await page.goto(`${url(t)}/#/r/web/app`);
    await row(page, 'signed').getByTestId('trust-state').filter({ hasText: 'verified' }).waitFor();
    t.is(await page.getByRole('button', { name: /Delete/ }).count(), 0);
    for (const tab of ['Members', 'Robots', 'Audit log']) t.is(await page.getByRole('link', { name: tab }).count(), 0, tab);
    await shot(page, '12-robot-session');
    // Its own session and CSRF token, straight to the API: a management write is refused.
    const status = await page.evaluate(`(async () => {
      const session = await (await fetch('/api/v1/session')).json();
      return (await fetch('/api/v1/projects/web', {
        method: 'PATCH', headers: { 'Content-Type': 'application/json', 'X-CSRF-Token': session.csrfToken }, body: '{"public":true}',
      })).status;
    })()`);
    t.is(status, 403);
    // Revoked while signed in: the next page load finds nobody signed in.
    t.is((await asRoot('DELETE', `/api/v1/projects/web/robots/viewer`)).status, 204);
    await page.reload();
    await page.getByRole('link', { name: 'Sign in' }).waitFor();
    t.is(await page.getByTestId('user').count(), 0);
  } finally {
    await context.close();
    await asRoot('DELETE', '/api/v1/projects/elsewhere');
  }
});

/** Controls without a name a screen reader could say (no label, aria-label or text). */
function unlabelled(page: Page): Promise<string[]> {
  return page.evaluate(() =>
    [...document.querySelectorAll('input, select, textarea, button, a[href]')]
      .filter((el) =>
        el instanceof HTMLInputElement || el instanceof HTMLSelectElement || el instanceof HTMLTextAreaElement
          ? (el.labels?.length ?? 0) === 0 && !el.getAttribute('aria-label')
          : !(el.textContent ?? '').trim() && !el.getAttribute('aria-label'),
      )
      .map((el) => el.outerHTML.slice(0, 80)),
  );
}

test.serial('keyboard only, on a narrow screen: sign in and reach a repository; every control has a name', async (t) => {
  const context = await t.context.browser.newContext({ viewport: { width: 390, height: 844 } });
  try {
    const page = await context.newPage();
    await page.goto(`${url(t)}/`);
    await page.getByRole('link', { name: 'Sign in' }).waitFor();
    // Tabbing starts once what the user is after is on the screen: a page renders its heading before
    // its lists arrive, and keys pressed meanwhile walk past the place the link will appear.
    const focusOn = async (name: string): Promise<void> => {
      await page
        .locator(`[id="${name}"]`)
        .or(page.getByRole('link', { name, exact: true }))
        .first()
        .waitFor();
      for (let i = 0; i < 40; i++) {
        await page.keyboard.press('Tab');
        if (
          await page.evaluate(
            (wanted) => (document.activeElement?.textContent ?? '').trim() === wanted || document.activeElement?.id === wanted,
            name,
          )
        )
          return;
      }
      throw new Error(`Tab never reached ${name}`);
    };
    await focusOn('Sign in');
    await page.keyboard.press('Enter');
    await focusOn('signin-user');
    await page.keyboard.type('dev');
    await page.keyboard.press('Tab');
    await page.keyboard.type(USERS.dev);
    await page.keyboard.press('Enter');
    await page.getByTestId('user').filter({ hasText: 'dev' }).waitFor();
    await focusOn('web');
    await page.keyboard.press('Enter');
    await page.getByRole('heading', { name: /Project web/ }).waitFor();
    await focusOn('web/app');
    await page.keyboard.press('Enter');
    await row(page, 'signed').getByTestId('trust-state').waitFor();
    t.deepEqual(await unlabelled(page), []);
    await shot(page, '10-narrow-repository');
    for (const tab of ['members', 'keys', 'settings', 'audit', 'clients']) {
      await page.goto(`${url(t)}/#/p/web/${tab}`);
      await page.getByRole('heading', { level: 2 }).first().waitFor();
      await page.waitForLoadState('networkidle');
      t.deepEqual(await unlabelled(page), [], tab);
    }
  } finally {
    await context.close();
  }
});

test.serial('signing out leaves an anonymous visitor who sees no private project', async (t) => {
  const { page } = t.context;
  await page.goto(`${url(t)}/`);
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('link', { name: 'Sign in' }).waitFor();
  await page.getByText('No projects to show.').waitFor();
  t.is(await page.getByRole('link', { name: 'web' }).count(), 0);
  const session = (await (await page.request.get(`${url(t)}/api/v1/session`)).json()) as { user?: string };
  t.is(session.user, undefined);
});
