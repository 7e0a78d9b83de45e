/**
 * The application-side client: `createCacheClient(env.TFTCACHE, { kv: env.CACHE_DO_KV, ctx })`.
 *
 * It never throws for a cache problem: if the tftcache Worker cannot be reached it reads the KV snapshot (when
 * a `kv` binding is given), and otherwise reports a miss; a value the cache refuses (too large, not JSON, a bad
 * key or TTL) is returned uncached. The errors that do reach the caller are its loader's, from getOrSet: the
 * loader threw, or did not settle within loadTimeoutMs (LoaderTimeoutError). A failing market-data call is the
 * application's to handle.
 */
import {
  effectiveLoadTimeout,
  errorMessage,
  keyedRecord,
  ownValue,
  settleWithin,
  getOrSetProblem,
  maxStalenessProblem,
  type DeletePrefixOptions,
  type GetOrSetOptions,
  type ServiceDeletePrefix,
  type ServiceGetOrSet,
  type SetOptions,
  type ServiceRead,
  type ServiceWrite,
} from "../protocol/service.js";
import { MAX_GET_MANY_KEYS } from "../protocol/limits.js";
import { readCachedSnapshot, type SnapshotKv } from "../protocol/snapshot-cache.js";
import { kvHit, kvStaleIfError } from "../protocol/kv-answer.js";

export type { DeletePrefixOptions, GetOrSetOptions, ServiceRead, SetOptions, SnapshotKv };
export { SNAPSHOT_TRUST_MS } from "../protocol/snapshot-cache.js";
export { DEFAULT_LOAD_TIMEOUT_MS, MAX_LOAD_TIMEOUT_MS } from "../protocol/service.js";

/** The service binding's shape, as `entrypoint = "CacheService"` exposes it: these seven methods and nothing else. */
export interface CacheServiceBinding {
  get(key: string): Promise<ServiceRead>;
  getMany(keys: string[]): Promise<Record<string, ServiceRead>>;
  set(key: string, value: unknown, opts?: SetOptions): Promise<ServiceWrite>;
  deletePrefix(prefix: string, opts?: DeletePrefixOptions): Promise<ServiceDeletePrefix>;
  delete(key: string): Promise<ServiceWrite & { deleted: boolean }>;
  getOrSet(key: string, loader: () => unknown, opts?: GetOrSetOptions): Promise<ServiceGetOrSet>;
  refresh(key: string, loader: () => unknown, opts?: GetOrSetOptions): Promise<ServiceGetOrSet>;
}

export interface CacheClientOptions {
  /**
   * The CACHE_DO_KV namespace, read directly when the tftcache Worker cannot be reached. The verified snapshot is
   * kept per isolate and reused while the key's metadata (getWithMetadata, which every KV binding has) says it is
   * unchanged; an object with only `get` works too, its snapshot then reused for at most SNAPSHOT_TRUST_MS (60 s).
   */
  kv?: SnapshotKv;
  /**
   * Keeps a stale-while-revalidate refresh alive after the response is sent. Without it the refresh is still
   * started (unawaited, its errors logged), but it lives only as long as your invocation does: it may be cut off
   * once the response is sent.
   */
  ctx?: { waitUntil(promise: Promise<unknown>): void };
  /**
   * Receives every one-line JSON log (`DUAL_CACHE_DO`: hit, miss, fallback, …). Without it only fallbacks and
   * failures are logged, to console.warn: a line per hit is a bill at production volume, not a signal.
   */
  log?: (line: string) => void;
}

export interface ClientStats {
  hits: number;
  misses: number;
  stale: number;
  /** Loader calls this client made (cached or not, failed or not, background refreshes included). */
  loads: number;
  /** Reads answered from the KV snapshot (or nowhere) because tftcache was bypassed or unreachable. */
  fallbacks: number;
  /** Cache problems absorbed: tftcache unreachable, or a value, key or option it refused. */
  errors: number;
  /** Time this client's loaders took, summed and the longest one (ms, settled or timed out). */
  loaderMs: number;
  loaderMaxMs: number;
  /** Loader calls that threw or did not settle within loadTimeoutMs. */
  loaderFailures: number;
}

/** Where a value came from: the DO's memory or its SQLite storage, the KV snapshot, or the loader. */
export type ValueSource = "memory" | "do" | "kv" | "loader";

/** getOrSetWithInfo's answer: the value getOrSet would return, and where it came from. */
export interface GetOrSetResult<T = unknown> {
  value: T;
  /**
   * "loader" when a loader ran for this value just now (this call's own, or for a call that joined another
   * request's load of the key, that load's); otherwise the tier that answered: "memory" or "do" (the DO's LRU or
   * its SQLite storage) or "kv" (the KV snapshot, tftcache or its DO unreachable or the flag off).
   */
  source: ValueSource;
  /**
   * now − when the value was stored in the cache, measured by whoever answered (0 for the loader's value; from KV
   * never less than the snapshot's own age). Absent only when the answer did not carry it.
   */
  ageMs?: number;
  /** A stale value: past its stale-while-revalidate fresh period (a refresh was started), or served by stale-if-error. */
  stale: boolean;
  /** The loader failed or timed out (now, or the key is backing off after it did) and this is the expired value. */
  staleIfError?: boolean;
  /** The DO's generation when it answered, or the KV snapshot's. */
  generation?: number;
  cachedAt?: number;
  /** The loader's "not found" (undefined), cached by negativeTtlSeconds. */
  notFound?: boolean;
}

/** A read with its provenance (`lookup`). */
export interface LookupResult<T = unknown> {
  found: boolean;
  value?: T;
  /** "none" when nothing answered (found: false). */
  source: ValueSource | "none";
  /** now − when the value was stored in the cache; from KV never less than the snapshot's own age. */
  ageMs?: number;
  /** Past a stale-while-revalidate entry's fresh period. */
  stale: boolean;
  /** The DO's generation when it answered, or the KV snapshot's. */
  generation?: number;
  cachedAt?: number;
  /** found: false because the value was older than maxStalenessMs. */
  tooOld?: boolean;
}

export interface ReadOptions {
  /** Refuse a value older than this (ms since it was stored): a miss rather than a too-old value. */
  maxStalenessMs?: number;
}

export interface CacheClient {
  get<T = unknown>(key: string, opts?: ReadOptions): Promise<T | undefined>;
  getMany<T = unknown>(keys: string[], opts?: ReadOptions): Promise<Map<string, T>>;
  /** The value with where it came from and how old it is. Never throws; a miss is `found: false`. */
  lookup<T = unknown>(key: string, opts?: ReadOptions): Promise<LookupResult<T>>;
  set(key: string, value: unknown, opts?: SetOptions): Promise<boolean>;
  /**
   * Invalidation by prefix: every entry whose key starts with `prefix` is deleted (`{ mode: "hard" }`, the default)
   * or marked stale (`{ mode: "soft" }`: the next getOrSet serves the old value while one refresh loads the new
   * one). Returns how many entries it deleted or marked, or null when the cache could not do it (never throws).
   */
  deletePrefix(prefix: string, opts?: DeletePrefixOptions): Promise<number | null>;
  delete(key: string): Promise<boolean>;
  /**
   * The cached value, or the loader's. Rejects only with the loader's own error: what it threw (or, for a
   * request that joined another request's load of the key, an Error with that load's message), or a
   * LoaderTimeoutError when the load did not settle within loadTimeoutMs.
   */
  getOrSet<T>(key: string, loader: () => T | Promise<T>, opts?: GetOrSetOptions): Promise<T>;
  /** getOrSet, with where the value came from: `{ value, source, ageMs, stale, staleIfError?, generation? }`. Same errors. */
  getOrSetWithInfo<T>(key: string, loader: () => T | Promise<T>, opts?: GetOrSetOptions): Promise<GetOrSetResult<T>>;
  stats(): ClientStats;
}

/** The load of a key did not settle within loadTimeoutMs: every request waiting for it gets this. */
export class LoaderTimeoutError extends Error {
  override readonly name = "LoaderTimeoutError";
  constructor(
    readonly key: string,
    readonly timeoutMs: number,
  ) {
    super(`loader for ${JSON.stringify(key)} did not settle within ${timeoutMs} ms`);
  }
}

const NO_BINDING = "no TFTCACHE service binding";

export function createCacheClient(binding: CacheServiceBinding | undefined, opts: CacheClientOptions = {}): CacheClient {
  const counters: ClientStats = { hits: 0, misses: 0, stale: 0, loads: 0, fallbacks: 0, errors: 0, loaderMs: 0, loaderMaxMs: 0, loaderFailures: 0 };
  /**
   * The loader, timed into loaderMs/loaderMaxMs, a throw counted in loaderFailures. `timedOut()` counts a call
   * abandoned at loadTimeoutMs (its time so far, one failure) and ignores however it settles later.
   */
  const timed = <T>(loader: () => T | Promise<T>) => {
    let t0 = 0;
    let open = false;
    const done = (failed: boolean) => {
      if (!open) return;
      open = false;
      const ms = Date.now() - t0;
      counters.loaderMs += ms;
      counters.loaderMaxMs = Math.max(counters.loaderMaxMs, ms);
      if (failed) counters.loaderFailures++;
    };
    const call = (): Promise<T> => {
      t0 = Date.now();
      open = true;
      const run = (async () => loader())();
      run.then(() => done(false), () => done(true));
      return run;
    };
    return Object.assign(call, { timedOut: () => done(true) });
  };
  const log = (event: string, fields: Record<string, unknown>) => {
    const line = JSON.stringify({ tag: "DUAL_CACHE_DO", event, ts: Date.now(), ...fields });
    if (opts.log) opts.log(line);
    else if (event !== "hit" && event !== "miss") console.warn(line);
  };
  /** A cache problem the caller never sees as an exception: counted and logged. */
  const absorb = (event: string, key: string, error: string) => {
    counters.errors++;
    log(event, { key, error });
  };

  /** The last resort: the snapshot straight from KV, read-only, read once for all `keys`. */
  async function fromKv(keys: string[], reason: string): Promise<Record<string, ServiceRead>> {
    for (const key of keys) {
      counters.fallbacks++;
      log("fallback", { key, reason });
    }
    const kv = opts.kv;
    // This isolate's verified copy while KV says the key is unchanged: no download or digest per request.
    const read = kv ? await readCachedSnapshot(kv, Date.now()) : null;
    const now = Date.now();
    return keyedRecord(
      keys.map((key): [string, ServiceRead] => {
        const entry = read?.ok ? read.find(key, now) : undefined;
        if (read?.ok && entry) return [key, kvHit(read, entry, now)];
        if (!read) return [key, { found: false, source: "none", fallbackReason: reason }];
        return [key, read.ok ? { found: false, source: "kv" } : { found: false, source: "none", fallbackReason: `${reason}; ${read.reason}` }];
      }),
    );
  }

  const fromKvOne = async (key: string, reason: string) => ownValue(await fromKv([key], reason), key)!;

  function count(read: ServiceRead, key: string): void {
    if (read.source === "kv" && read.fallbackReason) {
      counters.fallbacks++;
      log("fallback", { key, reason: read.fallbackReason });
    }
    if (read.found) counters.hits++;
    else counters.misses++;
    log(read.found ? "hit" : "miss", { key, source: read.source });
  }

  /**
   * maxStalenessMs: a value older than the caller accepts becomes a miss (`tooOld`). The age is the answerer's
   * (the DO's, or this client's for its own KV read), so clocks are never compared across machines.
   */
  function limitAge(r: ServiceRead, key: string, readOpts: ReadOptions | undefined): ServiceRead {
    const max = readOpts?.maxStalenessMs;
    if (!r.found || max === undefined) return r;
    const problem = maxStalenessProblem(max);
    if (problem) {
      absorb("bad_option", key, problem);
      return { found: false, source: "none", fallbackReason: problem };
    }
    const age = r.ageMs ?? (r.cachedAt === undefined ? undefined : Date.now() - r.cachedAt);
    if (age === undefined || age <= max) return r;
    log("too_old", { key, source: r.source, ageMs: age, maxStalenessMs: max });
    return { found: false, source: r.source, tooOld: true, ageMs: age, ...(r.fallbackReason ? { fallbackReason: r.fallbackReason } : {}) };
  }

  /** A ServiceRead as the provenance API reports it: "memory" or "do" for the DO's tiers. */
  function toLookup<T>(r: ServiceRead): LookupResult<T> {
    const source: LookupResult["source"] = !r.found ? "none" : r.source === "do" ? (r.tier === "memory" ? "memory" : "do") : r.source;
    const out: LookupResult<T> = { found: r.found, source, stale: r.stale === true };
    if (r.found) out.value = r.value as T;
    if (r.ageMs !== undefined) out.ageMs = r.ageMs;
    if (r.generation !== undefined) out.generation = r.generation;
    if (r.cachedAt !== undefined) out.cachedAt = r.cachedAt;
    if (r.tooOld) out.tooOld = true;
    return out;
  }

  async function read(key: string): Promise<ServiceRead> {
    if (!binding) return fromKvOne(key, NO_BINDING);
    try {
      return await binding.get(key);
    } catch (err) {
      counters.errors++;
      return fromKvOne(key, `tftcache unreachable: ${errorMessage(err)}`);
    }
  }

  /** A value a loader just returned, as getOrSetWithInfo reports it. */
  const fromLoader = <T>(value: T, r?: ServiceGetOrSet): GetOrSetResult<T> => ({
    value,
    source: "loader",
    ageMs: 0,
    stale: false,
    ...(r?.generation === undefined ? {} : { generation: r.generation }),
    ...(r?.notFound ? { notFound: true } : {}),
  });

  /** A cached answer (hit or stale) with its provenance. */
  function fromCache<T>(r: ServiceGetOrSet): GetOrSetResult<T> {
    // A cached "not found" lives in the DO's memory only.
    const source: ValueSource = r.source === "kv" ? "kv" : r.tier === "memory" || r.notFound ? "memory" : "do";
    const out: GetOrSetResult<T> = { value: r.value as T, source, stale: r.state === "stale" };
    if (r.ageMs !== undefined) out.ageMs = r.ageMs;
    if (r.staleIfError) out.staleIfError = true;
    if (r.generation !== undefined) out.generation = r.generation;
    if (r.cachedAt !== undefined) out.cachedAt = r.cachedAt;
    if (r.notFound) out.notFound = true;
    return out;
  }

  /** A loader's undefined without negativeTtlSeconds: documented behaviour (not cached), not a cache problem. */
  const undefinedNotCached = (r: ServiceGetOrSet) => r.code === "not_cacheable" && /returned undefined/.test(r.error ?? "");

  async function getOrSetInfo<T>(key: string, loader: () => T | Promise<T>, gsOpts?: GetOrSetOptions): Promise<GetOrSetResult<T>> {
    const timeoutMs = effectiveLoadTimeout(gsOpts);
    const run = timed(loader);
    /** This caller's own load, if the cache (or this client, uncached) called the loader for it. */
    let own: Promise<T> | undefined;
    const tracked = () => {
      counters.loads++; // a loader call, whatever becomes of it
      own = run();
      own.catch(() => {}); // its error reaches the caller through the cache's answer, below
      return own;
    };

    const timedOut = (error?: string) => {
      if (own) run.timedOut(); // this caller's loader hung (a joined request's loader is another's)
      // A request that joined another's load reports that load's limit, which the cache names, not its own.
      const limit = Number(error?.match(/within (\d+) ms/)?.[1] ?? timeoutMs);
      log("loader_timeout", { key, timeoutMs: limit, ...(error ? { error } : {}) });
      return new LoaderTimeoutError(key, limit);
    };
    /**
     * stale-if-error with tftcache unreachable: the loader failed, so the key's KV entry is served if it expired
     * no more than staleIfErrorSeconds ago and is no older than maxStalenessMs; otherwise the loader's error
     * stands. The options were validated before (getOrSetProblem), as CacheService validates them.
     */
    const staleFromKv = async (err: unknown): Promise<GetOrSetResult<T>> => {
      const withinMs = Math.round((gsOpts?.staleIfErrorSeconds ?? 0) * 1000);
      if (!(withinMs > 0) || !opts.kv) throw err;
      const now = Date.now();
      const read = await readCachedSnapshot(opts.kv, now);
      if (!read.ok) throw err;
      const max = gsOpts?.maxStalenessMs;
      const stale = kvStaleIfError(read, key, now, withinMs, max);
      if (stale === null) throw err;
      // maxStalenessMs is a hard limit: stale-if-error never serves a value older than it.
      if ("tooOldMs" in stale) {
        log("too_old", { key, source: "kv", ageMs: stale.tooOldMs, maxStalenessMs: max, staleIfError: true });
        throw err;
      }
      const { entry, ageMs, generation } = stale;
      counters.stale++;
      log("stale_if_error", { key, source: "kv", expiredMsAgo: Math.max(0, now - entry.expiresAt), error: errorMessage(err) });
      return { value: entry.value as T, source: "kv", ageMs, stale: true, staleIfError: true, generation, cachedAt: entry.cachedAt };
    };
    /** The loader's value without the cache: the load this call already started, else a fresh one, bounded. */
    const uncached = async (): Promise<T> => {
      const settled = await settleWithin(own ? () => own! : tracked, timeoutMs);
      if (settled.status === "ok") return settled.value;
      if (settled.status === "threw") throw settled.error;
      throw timedOut();
    };

    let r: ServiceGetOrSet;
    try {
      if (!binding) throw new Error(NO_BINDING);
      r = await binding.getOrSet(key, tracked, gsOpts);
    } catch (err) {
      const reason = binding ? `tftcache unreachable: ${errorMessage(err)}` : NO_BINDING;
      if (binding) counters.errors++;
      // The checks CacheService makes before loading: a refused option (staleIfErrorSeconds: NaN, Infinity,
      // 1e12; maxStalenessMs: -1, …) is never an unbounded stale read. The loader runs uncached, its error stands.
      const problem = getOrSetProblem(key, loader, gsOpts);
      if (problem) {
        counters.misses++;
        absorb("getorset_failed", key, problem);
        return fromLoader(await uncached());
      }
      const kv = limitAge(await fromKvOne(key, reason), key, gsOpts);
      if (kv.found) {
        counters.hits++;
        const hit: GetOrSetResult<T> = { value: kv.value as T, source: "kv", stale: kv.stale === true };
        if (kv.ageMs !== undefined) hit.ageMs = kv.ageMs;
        if (kv.generation !== undefined) hit.generation = kv.generation;
        if (kv.cachedAt !== undefined) hit.cachedAt = kv.cachedAt;
        return hit;
      }
      counters.misses++;
      return uncached().then(
        (value) => fromLoader(value),
        (e: unknown) => staleFromKv(e),
      );
    }

    if (!r.ok) {
      counters.misses++;
      if (r.code === "loader_timeout") throw timedOut(r.error);
      // The caller's own loader ran: its outcome is the answer (its error is the caller's to handle).
      if (own) {
        const settled = await settleWithin(() => own!, timeoutMs);
        if (settled.status === "threw") throw settled.error;
        if (settled.status === "ok" && settled.value === undefined && undefinedNotCached(r)) log("miss", { key, state: "uncached", reason: "undefined" });
        else absorb("getorset_failed", key, r.error ?? r.code ?? "getOrSet failed");
        if (settled.status === "timeout") throw timedOut();
        return fromLoader(settled.value);
      }
      // Joined another request's load of this key, which failed: that is the loader's error, not the cache's.
      if (r.code === "loader_failed") throw new Error(r.error ?? `loader for ${JSON.stringify(key)} failed`);
      // The load this call joined returned undefined (not cached without negativeTtlSeconds): run our own.
      if (undefinedNotCached(r)) log("miss", { key, state: "uncached", reason: "undefined" });
      // The cache refused before loading (key, TTL, options) or could not store what another request loaded.
      else absorb("getorset_failed", key, r.error ?? r.code ?? "getOrSet failed");
      return fromLoader(await uncached());
    }

    if (r.source === "kv") counters.fallbacks++;
    if (r.state === "hit") counters.hits++;
    else if (r.state === "stale") {
      counters.hits++;
      counters.stale++;
      if (r.staleIfError) {
        // stale-if-error: this caller's loader (if the cache called it) threw or hung. A throw was counted as it
        // settled; one still pending has hung: its time so far and one failure (a late settling is ignored).
        if (own) run.timedOut();
        log("stale_if_error", { key, source: r.source });
      } else if (binding) {
        // stale-while-revalidate: one refresh, in ctx.waitUntil when there is a ctx; without one it is started
        // anyway (unawaited, best effort: it lives as long as this invocation does), never left undone.
        const b = binding;
        const background = timed(loader); // a plain function crosses RPC; the timed wrapper stays here
        const refreshing = b
          .refresh(key, () => (counters.loads++, background()), gsOpts)
          .then((res) => {
            if (!res.ok) log("refresh_failed", { key, code: res.code, error: res.error });
          })
          .catch((err: unknown) => log("refresh_failed", { key, error: errorMessage(err) }));
        if (opts.ctx) opts.ctx.waitUntil(refreshing);
      }
    } else counters.misses++;
    log(r.state === "hit" || r.state === "stale" ? "hit" : "miss", { key, state: r.state, source: r.source });
    return r.state === "hit" || r.state === "stale" ? fromCache<T>(r) : fromLoader(r.value as T, r);
  }

  return {
    async get<T>(key: string, readOpts?: ReadOptions) {
      const r = limitAge(await read(key), key, readOpts);
      count(r, key);
      return r.found ? (r.value as T) : undefined;
    },

    async lookup<T>(key: string, readOpts?: ReadOptions) {
      const r = limitAge(await read(key), key, readOpts);
      count(r, key);
      return toLookup<T>(r);
    },

    async getMany<T>(keys: string[], readOpts?: ReadOptions) {
      const out = new Map<string, T>();
      let reads: Record<string, ServiceRead>;
      if (!binding) reads = await fromKv(keys, NO_BINDING);
      else {
        try {
          // The service answers at most MAX_GET_MANY_KEYS per call: larger batches go in several calls (merged
          // as own properties, so that a key like "__proto__" stays a key).
          const parts: Array<[string, ServiceRead]> = [];
          for (let i = 0; i < keys.length; i += MAX_GET_MANY_KEYS) {
            const part = await binding.getMany(keys.slice(i, i + MAX_GET_MANY_KEYS));
            for (const key of Object.keys(part)) parts.push([key, part[key]!]);
          }
          reads = keyedRecord(parts);
        } catch (err) {
          counters.errors++;
          reads = await fromKv(keys, `tftcache unreachable: ${errorMessage(err)}`);
        }
      }
      for (const key of keys) {
        const r = limitAge(ownValue(reads, key) ?? { found: false, source: "none" as const }, key, readOpts);
        count(r, key);
        if (r.found) out.set(key, r.value as T);
      }
      return out;
    },

    async set(key, value, setOpts = {}) {
      try {
        const r = binding ? await binding.set(key, value, setOpts) : { ok: false, error: NO_BINDING };
        if (!r.ok) absorb("set_failed", key, r.error ?? "refused");
        return r.ok;
      } catch (err) {
        absorb("set_failed", key, errorMessage(err));
        return false;
      }
    },

    async delete(key) {
      try {
        if (!binding) return false;
        const r = await binding.delete(key);
        if (!r.ok) absorb("delete_failed", key, r.error ?? "refused");
        return r.deleted;
      } catch (err) {
        absorb("delete_failed", key, errorMessage(err));
        return false;
      }
    },

    getOrSet: async <T>(key: string, loader: () => T | Promise<T>, gsOpts?: GetOrSetOptions): Promise<T> => (await getOrSetInfo(key, loader, gsOpts)).value,

    getOrSetWithInfo: getOrSetInfo,

    async deletePrefix(prefix, dpOpts) {
      try {
        if (!binding) {
          absorb("delete_prefix_failed", prefix, NO_BINDING);
          return null;
        }
        const r = await binding.deletePrefix(prefix, dpOpts);
        if (!r.ok) {
          absorb("delete_prefix_failed", prefix, r.error ?? "refused");
          return null;
        }
        return r.count;
      } catch (err) {
        absorb("delete_prefix_failed", prefix, errorMessage(err));
        return null;
      }
    },

    stats: () => ({ ...counters }),
  };
}
