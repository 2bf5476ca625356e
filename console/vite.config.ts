// Builds the console into dist/console, which `signet serve` serves at / (server/handlers/console.ts).
// No inline script or style is emitted (the server's Content-Security-Policy forbids them), and no
// module-preload polyfill (modern browsers have it; the polyfill would be code we do not need).
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';

export default defineConfig({
  root: fileURLToPath(new URL('.', import.meta.url)),
  base: '/',
  logLevel: 'warn',
  build: {
    outDir: fileURLToPath(new URL('../dist/console', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    modulePreload: { polyfill: false },
    assetsInlineLimit: 0,
    sourcemap: false,
  },
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
});
