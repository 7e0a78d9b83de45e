import { WorkerEntrypoint } from "cloudflare:workers";
import {
  MAX_GET_MANY_KEYS,
  canonicalJson,
  effectiveLoadTimeout,
  errorMessage,
  getOrSetProblem,
  keyProblem,
  keyedRecord,
  kvHit,
  kvStaleIfError,
  settleWithin,
  tooOld,
  ttlProblem,
  purgeModeOf,
  ttlJitterProblem,
  type DeletePrefixOptions,
  type GetOrSetOptions,
  type ServiceDeletePrefix,
  type ServiceGetOrSet,
  type ServiceRead,
  type ServiceWrite,
  type SetOptions,
} from "../protocol/index.js";
import type { StoredEntryView } from "./cache/cache-do.js";
import type { ReadThroughResult } from "./cache/read-through.js";
import { configOf, type CacheConfig } from "./config.js";
import { cacheStub, type Env } from "./env.js";
import { clock } from "./clock.js";
import { prefixProblem } from "./cache/prefix-purge.js";
import { readKvSnapshotCached } from "./kv-snapshot-reader.js";
import { createLogger, type Logger } from "./log.js";

/*
 * Security: everything on CacheService.prototype is callable by any Worker holding the service binding (RPC
 * exposes prototype methods and getters; TypeScript's `private` does not exist at runtime). So the class holds
 * exactly the documented API and nothing else: helpers are module functions, state is in #private fields.
 * test/consumer/rpc-surface.test.ts pins the prototype and attacks every other name through a real binding.
 */

interface Deps {
  env: Env;
  config: CacheConfig;
  log: Logger;
}

const READ_ONLY = "FEATURE_FLAG_DO_CACHE is false: the cache is read-only";
const FLAG_OFF = "FEATURE_FLAG_DO_CACHE is false";

/** Where a DO answer came from and how old it is (ServiceRead's provenance fields). */
const provenanceOf = (view: StoredEntryView) => ({
  cachedAt: view.cachedAt,
  ageMs: view.ageMs ?? Math.max(0, clock.now() - view.cachedAt),
  ...(view.generation === undefined ? {} : { generation: view.generation }),
  ...(view.tier === undefined ? {} : { tier: view.tier }),
});

const toRead = (view: StoredEntryView): ServiceRead => ({
  found: true,
  value: JSON.parse(view.valueJson),
  expiresAt: view.expiresAt,
  source: "do",
  ...(view.stale ? { stale: true } : {}),
  ...provenanceOf(view),
});

const unreachable = (err: unknown) => `DO unreachable: ${errorMessage(err)}`;

/**
 * Answers every key from the KV snapshot (a torn or corrupt snapshot answers nothing): this isolate's verified
 * copy while KV's key metadata says it is unchanged, so a fallback read costs no download or digest.
 */
async function fromKv({ env, log }: Deps, keys: string[], reason: string): Promise<Array<[string, ServiceRead]>> {
  for (const key of keys) log("warn", "DUAL_CACHE_DO", "fallback", { key, reason });
  const read = await readKvSnapshotCached(env.CACHE_DO_KV);
  const now = clock.now();
  return keys.map((key): [string, ServiceRead] => {
    const entry = read.ok ? read.find(key, now) : undefined;
    if (read.ok && entry) return [key, { ...kvHit(read, entry, now), fallbackReason: reason }];
    return [key, { found: false, source: read.ok ? "kv" : "none", fallbackReason: read.ok ? reason : `${reason}; ${read.reason}` }];
  });
}

const fromKvOne = async (deps: Deps, key: string, reason: string): Promise<ServiceRead> => (await fromKv(deps, [key], reason))[0]![1];

function fromDo(r: ReadThroughResult): ServiceGetOrSet {
  if (!r.ok) return { ok: false, source: "do", code: r.code, error: r.message };
  if (r.data.notFound) return { ok: true, state: r.data.state, source: "do", notFound: true };
  return { ok: true, value: JSON.parse(r.data.valueJson), state: r.data.state, source: "do", ...(r.data.staleIfError ? { staleIfError: true } : {}), ...(r.data.hit ? provenanceOf(r.data.hit) : {}) };
}

/**
 * stale-if-error with the DO bypassed or unreachable: the key's entry in the KV snapshot if it expired no more
 * than `withinMs` ago (KV keeps an entry stale-if-error retains until the DO drops it) and is no older than
 * `maxStalenessMs` (a hard limit, stale-if-error included). Never from a torn snapshot. The options were validated.
 */
async function staleFromKv({ env, log }: Deps, key: string, withinMs: number, maxStalenessMs: number | undefined, error: string): Promise<ServiceGetOrSet | null> {
  if (!(withinMs > 0)) return null;
  const read = await readKvSnapshotCached(env.CACHE_DO_KV);
  if (!read.ok) return null;
  const stale = kvStaleIfError(read, key, clock.now(), withinMs, maxStalenessMs);
  if (stale === null) return null;
  if ("tooOldMs" in stale) {
    log("info", "DUAL_CACHE_DO", "too_old", { key, source: "kv", ageMs: stale.tooOldMs, maxStalenessMs, staleIfError: true });
    return null;
  }
  log("warn", "DUAL_CACHE_DO", "stale_if_error", { key, source: "kv", error });
  const { entry, ageMs, generation } = stale;
  return { ok: true, value: entry.value, state: "stale", source: "kv", staleIfError: true, cachedAt: entry.cachedAt, ageMs, generation };
}

/** getOrSet and refresh: the DO's single flight, or with the DO bypassed or unreachable a KV hit, else the loader uncached. */
async function readThrough(deps: Deps, op: "getOrSet" | "refresh", key: string, loader: () => unknown, opts: GetOrSetOptions | undefined): Promise<ServiceGetOrSet> {
  const problem = getOrSetProblem(key, loader, opts);
  if (problem) return { ok: false, source: "none", code: "bad_request", error: problem };
  let fallbackReason = FLAG_OFF;
  if (deps.config.featureFlagDoCache) {
    try {
      return fromDo(await cacheStub(deps.env)[op](key, loader, opts));
    } catch (err) {
      fallbackReason = unreachable(err);
    }
  }
  const kv = await fromKvOne(deps, key, fallbackReason);
  // maxStalenessMs: a KV copy older than the caller accepts (by its ageMs, which counts the snapshot's own age) is
  // not served; the loader runs instead.
  const max = opts?.maxStalenessMs;
  if (kv.found && !(max !== undefined && (kv.ageMs === undefined ? tooOld(kv.cachedAt, clock.now(), max) : kv.ageMs > max))) {
    return { ok: true, value: kv.value, state: "hit", source: "kv", ...(kv.cachedAt === undefined ? {} : { cachedAt: kv.cachedAt }), ...(kv.ageMs === undefined ? {} : { ageMs: kv.ageMs }), ...(kv.generation === undefined ? {} : { generation: kv.generation }) };
  }
  const timeoutMs = effectiveLoadTimeout(opts);
  const settled = await settleWithin(() => loader(), timeoutMs);
  const name = JSON.stringify(key);
  if (settled.status === "ok") return { ok: true, value: settled.value, state: "uncached", source: "loader" };
  const failure: ServiceGetOrSet =
    settled.status === "timeout"
      ? { ok: false, source: "loader", code: "loader_timeout", error: `loader for ${name} did not settle within ${timeoutMs} ms` }
      : { ok: false, source: "loader", code: "loader_failed", error: `loader for ${name} failed: ${errorMessage(settled.error)}` };
  return (await staleFromKv(deps, key, Math.round((opts?.staleIfErrorSeconds ?? 0) * 1000), opts?.maxStalenessMs, failure.error!)) ?? failure;
}

/**
 * The cache for application Workers: `[[services]] binding = "TFTCACHE", service = "tftcache",
 * entrypoint = "CacheService"`. No HTTP, no admin key: the service binding is the capability, and what it grants
 * is exactly these methods. Cache failures come back as values (found: false, ok: false), never as
 * exceptions, so an application never has to catch them.
 */
export class CacheService extends WorkerEntrypoint<Env> {
  readonly #deps: Deps;

  constructor(ctx: ExecutionContext, env: Env) {
    super(ctx, env);
    const { config } = configOf(env);
    this.#deps = { env, config, log: createLogger(config.logLevel) };
  }

  async get(key: string): Promise<ServiceRead> {
    const invalid = keyProblem(key);
    if (invalid) return { found: false, source: "none", fallbackReason: invalid };
    if (!this.#deps.config.featureFlagDoCache) return fromKvOne(this.#deps, key, FLAG_OFF);
    try {
      const r = await cacheStub(this.#deps.env).getEntry(key);
      return r.ok ? toRead(r.data) : { found: false, source: "do" };
    } catch (err) {
      return fromKvOne(this.#deps, key, unreachable(err));
    }
  }

  /** One answer per key, as an own property even for keys like "__proto__" (read it with Object.hasOwn). */
  async getMany(keys: string[]): Promise<Record<string, ServiceRead>> {
    if (!Array.isArray(keys)) return {};
    // One call holds the cache for its whole length: a million keys took 16 s. Callers split larger batches.
    if (keys.length > MAX_GET_MANY_KEYS) {
      const reason = `getMany takes at most ${MAX_GET_MANY_KEYS} keys per call (got ${keys.length}); split the batch`;
      return keyedRecord(keys.slice(0, MAX_GET_MANY_KEYS).map((key): [string, ServiceRead] => [key, { found: false, source: "none", fallbackReason: reason }]));
    }
    if (!this.#deps.config.featureFlagDoCache) return keyedRecord(await fromKv(this.#deps, keys, FLAG_OFF));
    try {
      const views = await cacheStub(this.#deps.env).getMany(keys.filter((k) => !keyProblem(k)));
      return keyedRecord(
        keys.map((key): [string, ServiceRead] => {
          const view = views.get(key);
          return [key, view ? toRead(view) : { found: false, source: "do" }];
        }),
      );
    } catch (err) {
      return keyedRecord(await fromKv(this.#deps, keys, unreachable(err)));
    }
  }

  async set(key: string, value: unknown, opts: SetOptions = {}): Promise<ServiceWrite> {
    if (!this.#deps.config.featureFlagDoCache) return { ok: false, error: READ_ONLY };
    const invalid = keyProblem(key) ?? (typeof opts === "object" && opts !== null ? ttlProblem(opts.ttlSeconds) ?? ttlJitterProblem(opts.ttlJitter) : "options must be an object");
    if (invalid) return { ok: false, error: invalid };
    let text: string;
    try {
      text = canonicalJson(value);
    } catch (err) {
      // A Map, Set, BigInt, function, NaN or a too deep value is refused, never stored as something else.
      return { ok: false, error: errorMessage(err) };
    }
    // Size and the rest are checked once, by the DO (entryProblem), and its reason comes back as `error`.
    try {
      const r = await cacheStub(this.#deps.env).putEntry({
        key,
        value: text,
        ...(opts.ttlSeconds === undefined ? {} : { ttlSeconds: opts.ttlSeconds }),
        ...(opts.ttlJitter === undefined ? {} : { ttlJitter: opts.ttlJitter }),
      });
      if (r.ok) return { ok: true };
      return { ok: false, error: "message" in r ? String(r.message) : "rejected" };
    } catch (err) {
      return { ok: false, error: unreachable(err) };
    }
  }

  async delete(key: string): Promise<ServiceWrite & { deleted: boolean }> {
    if (!this.#deps.config.featureFlagDoCache) return { ok: false, deleted: false, error: READ_ONLY };
    const invalid = keyProblem(key);
    if (invalid) return { ok: false, deleted: false, error: invalid };
    try {
      const r = await cacheStub(this.#deps.env).deleteEntry(key);
      return { ok: true, deleted: r.ok };
    } catch (err) {
      return { ok: false, deleted: false, error: unreachable(err) };
    }
  }

  /**
   * Read-through with single flight inside the DO. `loader` is the caller's function, passed over RPC; the DO
   * calls it back at most once per key at a time, for at most opts.loadTimeoutMs. With the DO bypassed or
   * unreachable, a KV hit is served and otherwise the loader runs uncached.
   */
  async getOrSet(key: string, loader: () => unknown, opts?: GetOrSetOptions): Promise<ServiceGetOrSet> {
    return readThrough(this.#deps, "getOrSet", key, loader, opts);
  }

  /**
   * Invalidation by prefix: every entry whose key starts with `prefix` is deleted (mode "hard", the default) or
   * marked stale (mode "soft": getOrSet serves the old value once more while one refresh loads it). The same DO
   * operation as `DELETE /entries?prefix=` and `tftcache purge`; KV follows with one flush however many keys.
   */
  async deletePrefix(prefix: string, opts?: DeletePrefixOptions): Promise<ServiceDeletePrefix> {
    const asked = purgeModeOf(opts);
    const mode = "mode" in asked ? asked.mode : "hard";
    if (!this.#deps.config.featureFlagDoCache) return { ok: false, mode, count: 0, error: READ_ONLY };
    if ("problem" in asked) return { ok: false, mode, count: 0, error: asked.problem };
    // The one prefix check (the admin route's and the DO's too): "." and ".." are prefixes like any other.
    const invalid = prefixProblem(prefix);
    if (invalid) return { ok: false, mode, count: 0, error: invalid };
    try {
      const r = await cacheStub(this.#deps.env).purgePrefix(prefix, mode);
      if (!r.ok) return { ok: false, mode, count: 0, error: "message" in r ? String(r.message) : "rejected" };
      return { ok: true, mode, count: mode === "soft" ? (r.data.marked ?? 0) : r.data.deleted, generation: r.data.generation };
    } catch (err) {
      return { ok: false, mode, count: 0, error: unreachable(err) };
    }
  }

  /** The background half of stale-while-revalidate: the caller runs it in its own ctx.waitUntil. */
  async refresh(key: string, loader: () => unknown, opts?: GetOrSetOptions): Promise<ServiceGetOrSet> {
    return readThrough(this.#deps, "refresh", key, loader, opts);
  }
}
