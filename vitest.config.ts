import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

/** Vars every worker-suite DO sees: a known admin key, quiet logs, a budget small enough to exhaust in a test. */
const workerBindings = {
  ADMIN_API_KEY: "test-admin-key-0123456789",
  LOG_LEVEL: "error",
  KV_DAILY_WRITE_BUDGET: "40",
  CACHE_MAX_ENTRIES: "1000",
  CACHE_MAX_BYTES: "2097152",
};

const workerProject = (name: string, include: string[], bindings: Record<string, string>) => ({
  plugins: [cloudflareTest({ wrangler: { configPath: "./wrangler.toml" }, miniflare: { bindings: { ...workerBindings, ...bindings } } })],
  test: { name, include, testTimeout: 30_000 },
});

export default defineConfig({
  test: {
    projects: [
      workerProject("worker", ["test/worker/**/*.test.ts", "test/protocol/**/*.test.ts"], {}),
      // Same Worker, original system's behaviour: the baseline the coalesced mode is measured against.
      workerProject("worker-write-through", ["test/worker-write-through/**/*.test.ts"], { KV_SYNC_MODE: "write-through", KV_DAILY_WRITE_BUDGET: "100000" }),
      // The pure module runs here too: the digest must agree between workerd and Node 20.
      { test: { name: "cli", include: ["test/cli/**/*.test.ts", "test/protocol/**/*.test.ts"], environment: "node" } },
      // Starts the real stack once and spawns bin/tftcache (needs `npm run build` first; `npm test` does it).
      { test: { name: "e2e", include: ["test/e2e/**/*.test.ts"], environment: "node", testTimeout: 60_000, hookTimeout: 60_000, fileParallelism: false } },
    ],
  },
});
