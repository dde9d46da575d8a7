// ESLint flat config: typescript-eslint (type-aware), React hooks, and jsx-a11y for the
// accessibility rules a component library cannot enforce for us (labels, roles, alt text).
import js from "@eslint/js";
import jsxA11y from "eslint-plugin-jsx-a11y";
import reactHooks from "eslint-plugin-react-hooks";
import globals from "globals";
import tseslint from "typescript-eslint";

export default tseslint.config(
  { ignores: ["dist", "src/gen", "node_modules", "coverage"] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      ecmaVersion: 2022,
      globals: { ...globals.browser },
      parserOptions: {
        // playwright.config.ts belongs to e2e/tsconfig.json, which the project service does
        // not look for from the web/ folder.
        projectService: { allowDefaultProject: ["playwright.config.ts"] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
  },
  {
    files: ["**/*.{ts,tsx}"],
    plugins: { "react-hooks": reactHooks, "jsx-a11y": jsxA11y },
    rules: {
      ...reactHooks.configs.recommended.rules,
      ...jsxA11y.flatConfigs.recommended.rules,
      "@typescript-eslint/restrict-template-expressions": ["error", { allowNumber: true }],
      "@typescript-eslint/no-confusing-void-expression": ["error", { ignoreArrowShorthand: true }],
      // A component never talks to the network itself: every request goes through the one
      // RTK Query API module (src/api), which adds the token and turns errors into ApiError.
      "no-restricted-globals": [
        "error",
        { name: "fetch", message: "Use the API module (src/api) instead of fetch." },
        { name: "localStorage", message: "Never keep tokens or drafts in localStorage." },
      ],
    },
  },
  {
    // ApiError is a plain object on purpose: RTK Query keeps errors in the Redux store, which
    // holds serializable values only; the upload and download helpers reject with the same.
    files: ["src/api/**"],
    rules: {
      "@typescript-eslint/only-throw-error": "off",
      "@typescript-eslint/prefer-promise-reject-errors": "off",
    },
  },
  {
    // The API layer is where requests are made.
    files: ["src/api/**", "src/auth/**", "src/test/**", "**/*.test.{ts,tsx}"],
    rules: { "no-restricted-globals": ["error", { name: "localStorage", message: "Never keep tokens or drafts in localStorage." }] },
  },
  {
    files: ["*.config.{js,ts}", "scripts/**", "bench/**", "e2e/**"],
    languageOptions: { globals: { ...globals.node } },
  },
  {
    files: ["**/*.js", "**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
  },
);
