// ESLint 9 flat config: the recommended rules of ESLint and typescript-eslint for lib/ and test/.
// Run by `npm run lint` and by test/lint.test.ts (so `npm test` runs it).
// Type-aware rules (recommendedTypeChecked) are not on: they took about 50 s of CPU on this tree,
// against about 11 s without them, and most of what they report is tap's unawaited t.test().
// Formatting is Prettier's (.prettierrc.json); none of these rules is about layout.
import js from '@eslint/js';
import { defineConfig } from 'eslint/config';
import globals from 'globals';
import tseslint from 'typescript-eslint';

export default defineConfig(
  { ignores: ['dist/', 'build/', 'prebuilds/', 'coverage/', '.tap/', 'docs/', 'native/', 'node_modules/'] },
  {
    files: ['lib/**/*.ts', 'test/**/*.ts'],
    extends: [js.configs.recommended, tseslint.configs.recommended],
    rules: {
      // A leading underscore marks a binding kept on purpose: an omitted field in `{ x: _x, ...rest }`, a callback parameter, `for (const _ of ...)`.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_', ignoreRestSiblings: true },
      ],
      // Text shown to the user is cleaned with regexes that match control characters on purpose (cli/format.ts).
      'no-control-regex': 'off',
      // `const self = this` is how an async generator function (which cannot be an arrow) reaches its object.
      '@typescript-eslint/no-this-alias': ['error', { allowedNames: ['self'] }],
      // `declare namespace` only names types (tap's Test in a test); no runtime namespaces.
      '@typescript-eslint/no-namespace': ['error', { allowDeclarations: true }],
    },
  },
  {
    files: ['test/**/*.ts'],
    rules: {
      // Tests mutate parsed JSON field by field to build hostile input; `any` is the point there.
      '@typescript-eslint/no-explicit-any': 'off',
    },
  },
  { files: ['test/**/*.mjs'], extends: [js.configs.recommended], languageOptions: { globals: globals.node } },
);
