import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { buildSync } from "esbuild";
import { defineConfig } from "vitest/config";

/** Auxiliary Workers must be JavaScript: bundle them as wrangler would, once per vitest start (~100 ms). */
function bundle(entry: string, name: string): string {
  const outfile = `.wrangler/tmp/vitest/${name}.mjs`;
  buildSync({ entryPoints: [entry], outfile, bundle: true, format: "esm", platform: "neutral", target: "es2022", external: ["cloudflare:*"], logLevel: "error" });
  return outfile;
}

/** tftcache itself, for the consumer project's auxiliary Workers (with the DO, and KV-only with the flag off). */
const tftcacheScript = bundle("worker/index.ts", "tftcache");

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
      // Bounds small enough to reach in a test, including CACHE_MAX_BYTES below the 1 MiB value limit.
      workerProject("worker-small", ["test/worker-small/**/*.test.ts"], { CACHE_MAX_ENTRIES: "5", CACHE_MAX_BYTES: "300000" }),
      // The shipped KV defaults (budget 1,000, flush every 10 s): the whole-day pacing targets are stated for them.
      // No entry-count bound to speak of, so the byte bound alone keeps the snapshot within KV's value limit.
      workerProject("worker-defaults", ["test/worker-defaults/**/*.test.ts"], { KV_DAILY_WRITE_BUDGET: "1000", KV_FLUSH_INTERVAL_SECONDS: "10", CACHE_MAX_ENTRIES: "300000" }),
      // The example consumer and tftcache as two auxiliary Workers joined by a real service binding to the
      // CacheService entrypoint. (The pool names its main worker per test file, so an auxiliary Worker cannot
      // bind back to it; both sides are auxiliary here and the test drives the consumer over env.CONSUMER.)
      {
        plugins: [
          cloudflareTest({
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: { ...workerBindings },
              // The tests read tftcache's KV namespaces directly (rpc-surface: an attack must leave both keys as they were).
              // SPARE_KV belongs to no Worker: a second namespace for the client's per-source snapshot copies (kv-sources).
              kvNamespaces: { CACHE_DO_KV: "consumer-test-kv", KV_ONLY_KV: "consumer-test-kv-only", SPARE_KV: "consumer-test-kv-spare" },
              serviceBindings: {
                CONSUMER: "tftcache-consumer",
                CACHE_ADMIN: "tftcache",
                ATTACKER: "tftcache-attacker",
                // The entrypoint itself, from another Worker: what a consumer's binding gets (test/consumer/binding).
                TFTCACHE: { name: "tftcache", entrypoint: "CacheService" },
                TFTCACHE_KV_ONLY: { name: "tftcache-kv-only", entrypoint: "CacheService" },
              },
              workers: [
                {
                  name: "tftcache",
                  modules: true,
                  scriptPath: tftcacheScript,
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
                {
                  // tftcache with FEATURE_FLAG_DO_CACHE=false: CacheService answers from its own KV namespace.
                  name: "tftcache-kv-only",
                  modules: true,
                  scriptPath: tftcacheScript,
                  compatibilityDate: "2026-04-20",
                  kvNamespaces: { CACHE_DO_KV: "consumer-test-kv-only" },
                  bindings: { ADMIN_API_KEY: workerBindings.ADMIN_API_KEY, LOG_LEVEL: "error", FEATURE_FLAG_DO_CACHE: "false" },
                },
                {
                  // Holds only the CacheService binding and tries every other name on it (test/consumer/rpc-surface).
                  name: "tftcache-attacker",
                  modules: true,
                  scriptPath: bundle("test/consumer/attacker.ts", "attacker"),
                  compatibilityDate: "2026-04-20",
                  serviceBindings: { TFTCACHE: { name: "tftcache", entrypoint: "CacheService" } },
                },
              ],
            },
          }),
        ],
        // One file at a time: the files share the auxiliary Workers' cache, and rpc-surface compares it before and after.
        test: { name: "consumer", include: ["test/consumer/**/*.test.ts"], testTimeout: 30_000, fileParallelism: false },
      },
      // The pure module runs here too: the digest must agree between workerd and Node 20.
      { test: { name: "cli", include: ["test/cli/**/*.test.ts", "test/protocol/**/*.test.ts", "test/local/**/*.test.ts"], environment: "node" } },
      // Starts the real stack once and spawns bin/tftcache (needs `npm run build` first; `npm test` does it).
      { test: { name: "e2e", include: ["test/e2e/**/*.test.ts"], environment: "node", testTimeout: 60_000, hookTimeout: 60_000, fileParallelism: false } },
    ],
  },
});
