// The web console's static files: `/` answers browsers (Accept: text/html) with the page, and
// `/assets/<name>` with the scripts and styles Vite built from console/ (npm run build). Every
// other client asking for `/` gets the registry's 404 as before. Files are read once, compressed
// once (brotli and gzip), and served with a strict Content-Security-Policy: scripts, styles and
// requests to this origin only, no inline script, no framing.
import { existsSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants as zlib, gzipSync } from 'node:zlib';
import type { Ctx, RegistryDeps } from '../context.js';
import { OciError } from '../errors.js';
import { consoleBuild } from '../../storage/own-files.js';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "form-action 'self'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join('; ');

const TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.ico': 'image/x-icon',
  '.json': 'application/json',
};

interface Asset {
  type: string;
  raw: Buffer;
  gzip: Buffer;
  br: Buffer;
}

/** Where the built console is: dist/console, from the build or from the sources. */
export function consoleDirectory(): string | undefined {
  const dir = fileURLToPath(consoleBuild);
  return existsSync(`${dir}index.html`) ? dir : undefined;
}

async function loadAssets(dir: string): Promise<Map<string, Asset>> {
  const assets = new Map<string, Asset>();
  const add = async (name: string, file: string): Promise<void> => {
    const extension = name.slice(name.lastIndexOf('.'));
    const raw = await readFile(file);
    assets.set(name, {
      type: TYPES[extension] ?? 'application/octet-stream',
      raw,
      gzip: gzipSync(raw, { level: 9 }),
      br: brotliCompressSync(raw, { params: { [zlib.BROTLI_PARAM_QUALITY]: 11 } }),
    });
  };
  await add('index.html', `${dir}index.html`);
  const assetDir = `${dir}assets/`;
  if (existsSync(assetDir)) for (const name of await readdir(assetDir)) await add(`assets/${name}`, `${assetDir}${name}`);
  return assets;
}

function wantsHtml(ctx: Ctx): boolean {
  return /\btext\/html\b/.test(ctx.get('Accept'));
}

export function createConsoleHandlers(deps: Pick<RegistryDeps, 'config'>) {
  const configured = deps.config.console.directory;
  const directory = configured ? `${configured.replace(/\/+$/, '')}/` : consoleDirectory();
  let loaded: Promise<Map<string, Asset>> | undefined;
  const assets = (): Promise<Map<string, Asset>> => {
    if (!directory) throw new OciError('NOT_FOUND', 'the console is not built: run npm run build');
    loaded ??= loadAssets(directory).catch((err: unknown) => {
      loaded = undefined;
      throw err;
    });
    return loaded;
  };

  function send(ctx: Ctx, asset: Asset, cache: string): void {
    ctx.set('Cache-Control', cache);
    ctx.set('Vary', 'Accept-Encoding');
    ctx.type = asset.type;
    const encoding = ctx.acceptsEncodings('br', 'gzip', 'identity');
    const body = encoding === 'br' ? asset.br : encoding === 'gzip' ? asset.gzip : asset.raw;
    if (encoding === 'br' || encoding === 'gzip') ctx.set('Content-Encoding', encoding);
    ctx.body = ctx.method === 'HEAD' ? null : body;
    ctx.length = body.length;
  }

  return {
    async index(ctx: Ctx): Promise<void> {
      if (!deps.config.console.enabled || !wantsHtml(ctx)) throw new OciError('NOT_FOUND', 'no such endpoint', { path: ctx.path });
      const page = (await assets()).get('index.html')!;
      ctx.set('Content-Security-Policy', CONTENT_SECURITY_POLICY);
      ctx.set('X-Frame-Options', 'DENY');
      ctx.set('Referrer-Policy', 'no-referrer');
      send(ctx, page, 'no-cache');
    },

    async asset(ctx: Ctx): Promise<void> {
      if (!deps.config.console.enabled) throw new OciError('NOT_FOUND', 'no such endpoint', { path: ctx.path });
      const asset = (await assets()).get(`assets/${ctx.captures?.[0] ?? ''}`);
      if (!asset) throw new OciError('NOT_FOUND', 'no such file', { path: ctx.path });
      // Vite names every file by its content hash: a name never changes meaning.
      send(ctx, asset, 'public, max-age=31536000, immutable');
    },
  };
}
