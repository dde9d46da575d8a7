/// <reference types="vitest/config" />
import react from "@vitejs/plugin-react";
import { defineConfig } from "vite";

// `npm run dev` proxies the API and the app's config to a running gateway (`make up`'s by
// default); MLPLANE_WEB_GATEWAY points it elsewhere, e.g. a test stack on :18080.
const gateway = process.env.MLPLANE_WEB_GATEWAY ?? "http://127.0.0.1:8080";

export default defineConfig({
  plugins: [react()],
  server: {
    host: "127.0.0.1",
    port: 5173,
    strictPort: true,
    proxy: {
      "/api": { target: gateway },
      "/config.json": { target: gateway },
    },
  },
  preview: { host: "127.0.0.1", port: 4173 },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // Each page is its own chunk (React.lazy); the shared libraries get stable chunks so
    // that a change to one page does not invalidate the others in the browser's cache.
    rollupOptions: {
      output: {
        manualChunks(id) {
          if (!id.includes("node_modules")) return undefined;
          if (/node_modules\/(react|react-dom|scheduler)\//.test(id)) return "react";
          if (/node_modules\/(@reduxjs|redux|react-redux|immer|reselect|redux-thunk)\//.test(id))
            return "redux";
          return undefined;
        },
      },
    },
  },
  test: {
    // Unit tests beside the code; e2e/ holds the Playwright specs (npx playwright test).
    include: ["src/**/*.test.{ts,tsx}"],
    environment: "jsdom",
    setupFiles: ["src/test/setup.ts"],
    css: false,
    restoreMocks: true,
    // Above findBy's wait (src/test/setup.ts), so a slow wait fails with its own message.
    testTimeout: 30_000,
  },
});
