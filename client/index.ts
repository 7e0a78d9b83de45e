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
  type GetOrSetOptions,
  type ServiceGetOrSet,
  type ServiceRead,
  type ServiceWrite,
} from "../protocol/service.js";
import { MAX_GET_MANY_KEYS } from "../protocol/limits.js";
import { findLive, readSnapshot } from "../protocol/snapshot-read.js";

export type { GetOrSetOptions, ServiceRead };
export { DEFAULT_LOAD_TIMEOUT_MS, MAX_LOAD_TIMEOUT_MS } from "../protocol/service.js";

/** The service binding's shape, as `entrypoint = "CacheService"` exposes it: these six methods and nothing else. */
export interface CacheServiceBinding {
  get(key: string): Promise<ServiceRead>;
  getMany(keys: string[]): Promise<Record<string, ServiceRead>>;
  set(key: string, value: unknown, opts?: { ttlSeconds?: number }): Promise<ServiceWrite>;
  delete(key: string): Promise<ServiceWrite & { deleted: boolean }>;
  getOrSet(key: string, loader: () => unknown, opts?: GetOrSetOptions): Promise<ServiceGetOrSet>;
  refresh(key: string, loader: () => unknown, opts?: GetOrSetOptions): Promise<ServiceGetOrSet>;
}

export interface CacheClientOptions {
  /** The CACHE_DO_KV namespace, read directly when the tftcache Worker cannot be reached. */
  kv?: { get(key: string, type: "text"): Promise<string | null> };
  /** Keeps a stale-while-revalidate refresh alive after the response is sent. */
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
  /** Loader calls this client made (cached or not). */
  loads: number;
  /** Reads answered from the KV snapshot (or nowhere) because tftcache was bypassed or unreachable. */
  fallbacks: number;
  /** Cache problems absorbed: tftcache unreachable, or a value, key or option it refused. */
  errors: number;
}

export interface CacheClient {
  get<T = unknown>(key: string): Promise<T | undefined>;
  getMany<T = unknown>(keys: string[]): Promise<Map<string, T>>;
  set(key: string, value: unknown, opts?: { ttlSeconds?: number }): Promise<boolean>;
  delete(key: string): Promise<boolean>;
  /**
   * The cached value, or the loader's. Rejects only with the loader's own error: what it threw (or, for a
   * request that joined another request's load of the key, an Error with that load's message), or a
   * LoaderTimeoutError when the load did not settle within loadTimeoutMs.
   */
  getOrSet<T>(key: string, loader: () => T | Promise<T>, opts?: GetOrSetOptions): Promise<T>;
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
  const counters: ClientStats = { hits: 0, misses: 0, stale: 0, loads: 0, fallbacks: 0, errors: 0 };
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
    const read = kv ? await readSnapshot((k) => kv.get(k, "text")) : null;
    const now = Date.now();
    return keyedRecord(
      keys.map((key): [string, ServiceRead] => {
        const entry = read?.ok ? findLive(read.snapshot, key, now) : undefined;
        if (entry) return [key, { found: true, value: entry.value, source: "kv" }];
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

  async function read(key: string): Promise<ServiceRead> {
    if (!binding) return fromKvOne(key, NO_BINDING);
    try {
      return await binding.get(key);
    } catch (err) {
      counters.errors++;
      return fromKvOne(key, `tftcache unreachable: ${errorMessage(err)}`);
    }
  }

  return {
    async get<T>(key: string) {
      const r = await read(key);
      count(r, key);
      return r.found ? (r.value as T) : undefined;
    },

    async getMany<T>(keys: string[]) {
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
        const r = ownValue(reads, key) ?? { found: false, source: "none" as const };
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

    async getOrSet<T>(key: string, loader: () => T | Promise<T>, gsOpts?: GetOrSetOptions): Promise<T> {
      const timeoutMs = effectiveLoadTimeout(gsOpts);
      /** This caller's own load, if the cache called the loader for it. */
      let own: Promise<T> | undefined;
      const tracked = () => {
        own = (async () => loader())();
        own.catch(() => {}); // its error reaches the caller through the cache's answer, below
        return own;
      };

      const timedOut = (error?: string) => {
        // A request that joined another's load reports that load's limit, which the cache names, not its own.
        const limit = Number(error?.match(/within (\d+) ms/)?.[1] ?? timeoutMs);
        log("loader_timeout", { key, timeoutMs: limit, ...(error ? { error } : {}) });
        return new LoaderTimeoutError(key, limit);
      };
      /** The loader's value without the cache: the load this call already started, else a fresh one, bounded. */
      const uncached = async (): Promise<T> => {
        counters.loads++;
        const settled = await settleWithin(own ? () => own! : loader, timeoutMs);
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
        const kv = await fromKvOne(key, reason);
        if (kv.found) {
          counters.hits++;
          return kv.value as T;
        }
        counters.misses++;
        return uncached();
      }

      if (!r.ok) {
        counters.misses++;
        if (r.code === "loader_timeout") throw timedOut(r.error);
        // The caller's own loader ran: its outcome is the answer (its error is the caller's to handle).
        if (own) {
          const settled = await settleWithin(() => own!, timeoutMs);
          if (settled.status === "threw") throw settled.error;
          absorb("getorset_failed", key, r.error ?? r.code ?? "getOrSet failed");
          counters.loads++;
          if (settled.status === "timeout") throw timedOut();
          return settled.value;
        }
        // Joined another request's load of this key, which failed: that is the loader's error, not the cache's.
        if (r.code === "loader_failed") throw new Error(r.error ?? `loader for ${JSON.stringify(key)} failed`);
        // The cache refused before loading (key, TTL, options) or could not store what another request loaded.
        absorb("getorset_failed", key, r.error ?? r.code ?? "getOrSet failed");
        return uncached();
      }

      if (r.source === "kv") counters.fallbacks++;
      if (r.state === "hit") counters.hits++;
      else if (r.state === "stale") {
        counters.hits++;
        counters.stale++;
        if (opts.ctx && binding) {
          const b = binding;
          opts.ctx.waitUntil(
            b
              .refresh(key, loader, gsOpts)
              .then((res) => {
                if (!res.ok) log("refresh_failed", { key, code: res.code, error: res.error });
              })
              .catch((err: unknown) => log("refresh_failed", { key, error: errorMessage(err) })),
          );
        }
      } else {
        counters.misses++;
        if (r.state === "loaded" || r.state === "uncached") counters.loads++;
      }
      log(r.state === "hit" || r.state === "stale" ? "hit" : "miss", { key, state: r.state, source: r.source });
      return r.value as T;
    },

    stats: () => ({ ...counters }),
  };
}
