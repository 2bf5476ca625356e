// Lint: typescript-eslint's type-checked recommended rules over every TypeScript file.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'console/dist/', 'console/vite.config.ts', 'test-output/', '**/*.js', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // Methods of the seams (BlobStore, MetadataStore, ...) are closures over their factory, never
      // `this`-bound, so passing `store.read` around is safe; the rule cannot tell.
      '@typescript-eslint/unbound-method': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
      // Async functions that do not await implement Promise-returning seams: a throw inside them
      // becomes a rejection, which callers of the seam rely on.
      '@typescript-eslint/require-await': 'off',
      // A destructured tuple is const only if every name is.
      'prefer-const': ['error', { destructuring: 'all' }],
    },
  },
  {
    // openpgp's declarations name stream types of @openpgp/web-stream-tools that do not resolve
    // under NodeNext; typescript-eslint sees them as error types. tsc checks these files.
    files: ['sigstore/openpgp-signature.ts', 'test/helpers/signing.ts', 'test/sigstore/verify.test.ts'],
    rules: {
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },
);
