import js from '@eslint/js';
import globals from 'globals';

export default [
  { ignores: ['node_modules/', 'test-results/'] },
  js.configs.recommended,
  {
    files: ['**/*.js'],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: 'module',
      globals: { ...globals.browser, ...globals.node },
    },
    rules: {
      'no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' }],
      // User strings become text nodes only.
      'no-restricted-properties': ['error',
        { property: 'innerHTML', message: 'render user strings with textContent' },
        { property: 'outerHTML', message: 'render user strings with textContent' },
        { property: 'insertAdjacentHTML', message: 'render user strings with textContent' },
      ],
      'no-eval': 'error',
      'no-implied-eval': 'error',
    },
  },
];
