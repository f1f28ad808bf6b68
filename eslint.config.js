// Lint rules: ESLint's and typescript-eslint's recommended sets, with the exceptions this codebase
// needs (each says why). Formatting is Prettier's job (.prettierrc.json), not ESLint's.
import js from '@eslint/js'
import globals from 'globals'
import tseslint from 'typescript-eslint'

export default tseslint.config(
  { ignores: ['node_modules/', '.tools/', 'support/mongo/target/', 'src/lexicon/', 'dist/'] },
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      // Responses of other services (XRPC bodies, MongoDB documents) are typed at the boundary that validates them.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' }],
    },
  },
  {
    files: ['src/appview/dashboard/**/*.js'],
    languageOptions: { globals: { ...globals.browser } },
  },
)
