// Chromium for the console's browser tests: Debian's /usr/bin/chromium driven by playwright-core
// (no browser download), and the console built by Vite into a directory of the test's own (so
// concurrent test files never share or race on dist/console).
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser } from 'playwright-core';

export const CHROMIUM = process.env.SIGNET_TEST_CHROMIUM ?? '/usr/bin/chromium';
const REPO = fileURLToPath(new URL('../..', import.meta.url));

/** Screenshots land here for a reviewer (git-ignored). */
export const SCREENSHOTS = path.join(REPO, 'test-output', 'console');

export async function buildConsole(outDir: string): Promise<void> {
  const { build } = await import('vite');
  await build({ configFile: path.join(REPO, 'console', 'vite.config.ts'), logLevel: 'error', build: { outDir, emptyOutDir: true } });
}

export async function launchChromium(): Promise<Browser> {
  await mkdir(SCREENSHOTS, { recursive: true });
  // Tests run as root in CI, where Chromium's sandbox cannot start.
  return chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'], timeout: 30_000 });
}
