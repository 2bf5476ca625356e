// Where Signet's own files are at run time. The same modules run from two layouts:
//
//   the sources, under tsx (tests, bench, development): <repository>/storage/own-files.ts
//   the build (`npm run build`, scripts/build.mjs): dist/server/main.js, dist/storage/pglite-*.js
//     and the chunks they share in dist/chunks/, every one of them one directory below dist/
//
// Either way this module's code sits one directory below the root of the layout, so the paths here
// are relative to that root. A module cannot find these files from its own address: in the build,
// its code is in whichever chunk esbuild put it.
const root = new URL('../', import.meta.url);

/** Running the TypeScript sources (tsx), not the build. */
export const fromSources = import.meta.url.endsWith('.ts');

/** A script started as a thread or process of its own, such as 'storage/pglite-worker'. */
export function entryPoint(name: string): URL {
  return new URL(`${name}${fromSources ? '.ts' : '.js'}`, root);
}

/** The SQL migrations (storage/migrations/, copied into dist/storage/migrations/ by the build). */
export const migrationsDirectory = new URL('storage/migrations/', root);

/** The built web console (Vite writes dist/console, beside the built server). */
export const consoleBuild = new URL(fromSources ? 'dist/console/' : 'console/', root);

/** package.json: in the repository, or above dist/ (the image copies both). */
export const packageJson = new URL(fromSources ? 'package.json' : '../package.json', root);
