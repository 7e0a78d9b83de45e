import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { buildSync } from "esbuild";
import { defineConfig } from "vitest/config";

/** Auxiliary Workers must be JavaScript: bundle them as wrangler would, once per vitest start (~100 ms). */
function bundle(entry: string, name: string): string {
  const outfile = `.wrangler/tmp/vitest/${name}.mjs`;
  buildSync({ entryPoints: [entry], outfile, bundle: true, format: "esm", platform: "neutral", target: "es2022", external: ["cloudflare:*"], logLevel: "error" });
  return outfile;
}

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
      // The example consumer and tftcache as two auxiliary Workers joined by a real service binding to the
      // CacheService entrypoint. (The pool names its main worker per test file, so an auxiliary Worker cannot
      // bind back to it; both sides are auxiliary here and the test drives the consumer over env.CONSUMER.)
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: { ...workerBindings },
              serviceBindings: { CONSUMER: "tftcache-consumer", CACHE_ADMIN: "tftcache" },
              workers: [
                {
                  name: "tftcache",
                  modules: true,
                  scriptPath: bundle("worker/index.ts", "tftcache"),
                  compatibilityDate: "2026-04-20",
                  durableObjects: { CACHE_DO: { className: "CacheDurableObject", useSQLite: true } },
                  kvNamespaces: { CACHE_DO_KV: "consumer-test-kv" },
                  bindings: { ADMIN_API_KEY: workerBindings.ADMIN_API_KEY, LOG_LEVEL: "error" },
                },
                {
                  name: "tftcache-consumer",
                  modules: true,
                  scriptPath: bundle("examples/consumer/src/index.ts", "consumer"),
                  compatibilityDate: "2026-04-20",
                  serviceBindings: { TFTCACHE: { name: "tftcache", entrypoint: "CacheService" } },
                },
              ],
            },
          }),
        ],
        test: { name: "consumer", include: ["test/consumer/**/*.test.ts"], testTimeout: 30_000 },
      },
      // The pure module runs here too: the digest must agree between workerd and Node 20.
      { test: { name: "cli", include: ["test/cli/**/*.test.ts", "test/protocol/**/*.test.ts"], environment: "node" } },
      // Starts the real stack once and spawns bin/tftcache (needs `npm run build` first; `npm test` does it).
      { test: { name: "e2e", include: ["test/e2e/**/*.test.ts"], environment: "node", testTimeout: 60_000, hookTimeout: 60_000, fileParallelism: false } },
    ],
  },
});
