// Zone rules of STYLE.md: only the host glue imports `vscode`; the engine stays pure (plain-Node testable,
// used by the CLI); the webview is browser code that imports neither the engine nor Node; `shared` imports nothing.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const noVscode = { name: 'vscode', message: 'Only the host glue (src/extension outside engine/) may import vscode.' };
const nodeBuiltins = ['fs', 'path', 'os', 'child_process', 'worker_threads', 'crypto', 'util', 'zlib', 'stream', 'http', 'net']
  .flatMap((m) => [m, `node:${m}`]);

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'out/**', 'scratch/**', '**/*.js', '**/*.mjs'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-explicit-any': 'off',
      'no-restricted-syntax': ['error', { selector: 'ExportDefaultDeclaration', message: 'No default exports (STYLE.md).' }],
    },
  },
  {
    files: ['src/extension/engine/**/*.ts', 'src/extension/cli.ts', 'src/extension/worker.ts', 'src/extension/scoreWorker.ts', 'src/extension/engineClient.ts', 'src/extension/workerProtocol.ts'],
    rules: {
      'no-restricted-imports': ['error', { paths: [noVscode], patterns: [{ group: ['**/commands/**', '**/panels/**'], message: 'The engine must not depend on host glue.' }] }],
      'no-console': 'error',
    },
  },
  {
    files: ['src/extension/cli.ts'],
    rules: { 'no-console': 'off' },
  },
  {
    files: ['src/webview/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [noVscode, ...nodeBuiltins.map((name) => ({ name, message: 'The webview runs in a browser.' }))],
        patterns: [{ group: ['**/extension/**', '@tensorflow/*'], message: 'The webview only renders: no engine code.' }],
      }],
    },
  },
  {
    files: ['src/shared/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: [noVscode, ...nodeBuiltins.map((name) => ({ name, message: 'shared/ is pure.' }))],
        patterns: [{ group: ['**/extension/**', '**/webview/**', '@tensorflow/*'], message: 'shared/ imports nothing.' }],
      }],
    },
  },
);
