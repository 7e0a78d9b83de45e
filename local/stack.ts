import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { createServer as createNetServer } from "node:net";
import { isAbsolute, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";
import { Log, LogLevel, Miniflare, type WorkerOptions } from "miniflare";
import { parse } from "smol-toml";
import { LOCAL_DEFAULTS, type LocalStackInfo } from "../cli/config/local-stack.js";
import { chooseAdminKey, type AdminKeyChoice } from "./dev-vars.js";
import type { KvLike } from "./kv-rest-api.js";
import type { KvRestEnv } from "./kv-rest-worker.js";

export interface StackOptions {
  /** Repository root: where wrangler.toml is and .wrangler/ goes. */
  root: string;
  host?: string;
  port?: number;
  kvPort?: number;
  /** Persistence root; default <root>/.wrangler/state/v3, the layout `wrangler dev` uses. */
  persistTo?: string;
  fresh?: boolean;
  /** Extra or overriding [vars] (tests shorten the flush interval, for example). */
  vars?: Record<string, string>;
  /** Overrides .dev.vars (tests, the benchmark). */
  adminKey?: string;
  /** Where to read ADMIN_API_KEY from; default <root>/.dev.vars, as `wrangler dev` reads it. */
  devVarsFile?: string;
  quiet?: boolean;
  /** Another entry module to bundle instead of wrangler.toml's `main` (the benchmark's instrumented DO). */
  entry?: string;
  /** Exposes workerd's V8 inspector (the benchmark reads heap usage through it). */
  inspectorPort?: number;
  /** Also run examples/consumer, bound to tftcache's CacheService by a service binding, on this port. */
  consumerPort?: number;
}

export const CONSUMER_ENTRY = "examples/consumer/src/index.ts";
/** Part of the stack, not of the project it runs: bundled from beside this file, whatever `root` is. */
const KV_REST_ENTRY = fileURLToPath(new URL("./kv-rest-worker.ts", import.meta.url));

export interface Stack {
  info: LocalStackInfo;
  /** The admin key the Worker got and where it came from (the banner prints it). */
  adminKey: AdminKeyChoice;
  /** The example consumer Worker's URL, when started with consumerPort. */
  consumerUrl?: string;
  kv: KvLike;
  /** The Miniflare instance, for callers that need more than HTTP (the benchmark calls the DO over RPC). */
  mf: Miniflare;
  stop(): Promise<void>;
}

export class PortInUseError extends Error {}

/** Fails fast, with the port named, instead of letting workerd die with an opaque bind error. */
export async function assertPortFree(host: string, port: number): Promise<void> {
  await new Promise<void>((resolve, reject) => {
    const probe = createNetServer();
    probe.once("error", (err: NodeJS.ErrnoException) =>
      reject(err.code === "EADDRINUSE" ? new PortInUseError(`port ${port} on ${host} is already in use`) : err),
    );
    probe.listen(port, host, () => probe.close(() => resolve()));
  });
}

function readWranglerToml(root: string) {
  const doc = parse(readFileSync(join(root, "wrangler.toml"), "utf8")) as {
    main: string;
    compatibility_date: string;
    vars?: Record<string, string>;
    kv_namespaces?: Array<{ binding: string; id: string; preview_id?: string }>;
    ratelimits?: Array<{ name: string; simple?: { limit: number; period: 10 | 60 } }>;
  };
  const ns = doc.kv_namespaces?.find((n) => n.binding === "CACHE_DO_KV");
  if (!ns) throw new Error("wrangler.toml has no CACHE_DO_KV kv_namespaces entry");
  // Rate Limiting bindings (AUTH_RATE_LIMITER), simulated locally as wrangler dev simulates them.
  const ratelimits: Record<string, { simple: { limit: number; period: 10 | 60 } }> = {};
  for (const r of doc.ratelimits ?? []) if (r.simple) ratelimits[r.name] = { simple: r.simple };
  return { main: doc.main, compatibilityDate: doc.compatibility_date, vars: doc.vars ?? {}, namespaceId: ns.preview_id ?? ns.id, ratelimits };
}

/** One bundle per entry per process: restarts (tests, the benchmark's cold starts) reuse it. */
const bundles = new Map<string, Promise<string>>();

function bundleWorker(root: string, main: string, outDir: string): Promise<string> {
  const key = `${root}|${main}`;
  let bundle = bundles.get(key);
  if (!bundle) {
    bundle = buildBundle(root, main, outDir);
    bundles.set(key, bundle);
    bundle.catch(() => bundles.delete(key));
  }
  return bundle;
}

async function buildBundle(root: string, main: string, outDir: string): Promise<string> {
  mkdirSync(outDir, { recursive: true });
  const outfile = join(outDir, "worker.mjs");
  await build({
    entryPoints: [isAbsolute(main) ? main : join(root, main)],
    outfile,
    bundle: true,
    format: "esm",
    target: "es2022",
    platform: "neutral",
    external: ["cloudflare:*"],
    logLevel: "error",
  });
  return outfile;
}

/**
 * The Worker in workerd (Miniflare, from an esbuild bundle of wrangler.toml's `main`) plus a Cloudflare-shaped
 * KV REST endpoint over the very KV namespace the Worker's CACHE_DO_KV binding writes, served by a second Worker
 * in the same workerd (local/kv-rest-worker.ts). Both persist under
 * `.wrangler/state/v3`, so state survives restarts and `wrangler kv key get --local --preview` sees it too.
 */
export async function startStack(opts: StackOptions): Promise<Stack> {
  const host = opts.host ?? "127.0.0.1";
  const port = opts.port ?? 8787;
  const kvPort = opts.kvPort ?? port + 1;
  const persistRoot = opts.persistTo ?? join(opts.root, ".wrangler", "state", "v3");
  if (opts.fresh) rmSync(persistRoot, { recursive: true, force: true });
  // workerd binds every port itself; two listeners on one port would fail inside it with an opaque bind error.
  const ports = [port, kvPort, ...(opts.consumerPort ? [opts.consumerPort] : [])];
  if (new Set(ports).size !== ports.length) throw new PortInUseError(`the Worker, KV REST API and consumer ports must differ (got ${ports.join(", ")})`);
  await assertPortFree(host, port);
  await assertPortFree(host, kvPort);

  const toml = readWranglerToml(opts.root);
  const adminKey = chooseAdminKey(opts.root, { ...(opts.adminKey !== undefined ? { override: opts.adminKey } : {}), ...(opts.devVarsFile ? { devVarsFile: opts.devVarsFile } : {}) });
  const scriptPath = await bundleWorker(opts.root, opts.entry ?? toml.main, join(opts.root, ".wrangler", "tmp", `tftcache-local-${(opts.entry ?? toml.main).replace(/[^\w]+/g, "-")}`));
  const tftcache: WorkerOptions = {
    name: "tftcache",
    modules: true,
    scriptPath,
    compatibilityDate: toml.compatibilityDate,
    durableObjects: { CACHE_DO: { className: "CacheDurableObject", useSQLite: true } },
    kvNamespaces: { CACHE_DO_KV: toml.namespaceId },
    ratelimits: toml.ratelimits,
    // An empty key is passed as empty, as wrangler dev passes it: the Worker then fails closed (admin_disabled).
    bindings: { ...toml.vars, ...opts.vars, ADMIN_API_KEY: adminKey.key },
  };
  const kvRestBindings: Omit<KvRestEnv, "CACHE_DO_KV"> = { KV_REST_ACCOUNT_ID: LOCAL_DEFAULTS.accountId, KV_REST_NAMESPACE_ID: toml.namespaceId, KV_REST_TOKEN: LOCAL_DEFAULTS.apiToken };
  const kvRest: WorkerOptions = {
    name: "tftcache-kv-rest-api",
    modules: true,
    scriptPath: await bundleWorker(opts.root, KV_REST_ENTRY, join(opts.root, ".wrangler", "tmp", "tftcache-local-kv-rest-api")),
    compatibilityDate: toml.compatibilityDate,
    kvNamespaces: { CACHE_DO_KV: toml.namespaceId },
    bindings: kvRestBindings,
    unsafeDirectSockets: [{ host, port: kvPort }],
  };
  const workers: WorkerOptions[] = [tftcache, kvRest];
  if (opts.consumerPort) {
    await assertPortFree(host, opts.consumerPort);
    workers.push({
      name: "tftcache-consumer",
      modules: true,
      scriptPath: await bundleWorker(opts.root, CONSUMER_ENTRY, join(opts.root, ".wrangler", "tmp", "tftcache-local-consumer")),
      compatibilityDate: toml.compatibilityDate,
      // The same binding as examples/consumer/wrangler.toml: RPC to the named entrypoint, no HTTP, no key.
      serviceBindings: { TFTCACHE: { name: "tftcache", entrypoint: "CacheService" } },
      kvNamespaces: { CACHE_DO_KV: toml.namespaceId },
      unsafeDirectSockets: [{ host, port: opts.consumerPort }],
    });
  }
  const mf = new Miniflare({
    host,
    port,
    ...(opts.inspectorPort ? { inspectorPort: opts.inspectorPort } : {}),
    log: new Log(opts.quiet ? LogLevel.ERROR : LogLevel.INFO),
    // No network here or in CI: do not fetch the real `request.cf` object.
    cf: false,
    kvPersist: join(persistRoot, "kv"),
    durableObjectsPersist: join(persistRoot, "do"),
    workers,
  });
  try {
    const url = await mf.ready;
    const kv = (await mf.getKVNamespace("CACHE_DO_KV")) as unknown as KvLike;
    const info: LocalStackInfo = {
      url: url.origin,
      apiKey: adminKey.key,
      adminKeySource: adminKey.source,
      accountId: LOCAL_DEFAULTS.accountId,
      apiToken: LOCAL_DEFAULTS.apiToken,
      namespaceId: toml.namespaceId,
      cfApiBase: `http://${host}:${kvPort}/client/v4`,
    };
    return {
      info,
      adminKey,
      ...(opts.consumerPort ? { consumerUrl: `http://${host}:${opts.consumerPort}` } : {}),
      kv,
      mf,
      stop: () => mf.dispose(),
    };
  } catch (err) {
    await mf.dispose();
    throw err;
  }
}
