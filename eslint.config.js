// Lints the browser client (scripts/test runs `eslint web/static/js eslint.config.js`).
// ESLint's recommended rules, plus a few that catch real bugs in this code.
import js from "@eslint/js";
import globals from "globals";

export default [
  js.configs.recommended,
  {
    files: ["web/static/js/**/*.js"],
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: { ...globals.browser },
    },
    linterOptions: { reportUnusedDisableDirectives: "error" },
    rules: {
      // These two are in the recommended set already; with browser globals only, a
      // Node global (process, require, Buffer) is undefined here.
      "no-undef": "error",
      "no-unused-vars": "error",
      eqeqeq: ["error", "always"],
      // Browser globals that a forgotten local declaration silently falls back on.
      "no-restricted-globals": ["error", "event", "name", "status", "length", "origin",
        "parent", "top", "self", "closed", "opener", "frames"],
      "no-shadow": "error",
      // A use in the same scope before the declaration throws (the temporal dead zone);
      // one inside a function that runs later is how modules here are laid out.
      "no-use-before-define": ["error", { functions: false, classes: false, variables: false }],
      "no-promise-executor-return": "error",
      "no-self-compare": "error",
      "no-template-curly-in-string": "error",
      "no-unmodified-loop-condition": "error",
      "no-unreachable-loop": "error",
      "no-constructor-return": "error",
      "array-callback-return": "error",
      "no-var": "error",
      "prefer-const": "error",
      // The browser loads modules by URL: a bare name ("lib") or a path without
      // ".js" resolves only in a bundler, and there is none.
      "no-restricted-imports": ["error", {
        patterns: [{
          regex: "^(?!\\./[\\w-]+\\.js$)",
          message: "Import a sibling module by its relative URL, e.g. \"./api.js\".",
        }],
      }],
    },
  },
  {
    files: ["eslint.config.js"],
    languageOptions: { sourceType: "module", globals: { ...globals.node } },
  },
];
