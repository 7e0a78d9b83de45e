/**
 * The application-side client: `createCacheClient(env.TFTCACHE, { kv: env.CACHE_DO_KV, ctx })`.
 *
 * It never throws for a cache problem: if the tftcache Worker cannot be reached it reads the KV snapshot (when
 * a `kv` binding is given), and otherwise reports a miss. The one error that does reach the caller is its own
 * loader's, from getOrSet: a failing market-data call is the application's to handle.
 */
import type { GetOrSetOptions, ServiceGetOrSet, ServiceRead, ServiceWrite } from "../protocol/service.js";
import { findLive, readSnapshot } from "../protocol/snapshot-read.js";

export type { GetOrSetOptions, ServiceRead };

/** The service binding's shape, as `entrypoint = "CacheService"` exposes it. */
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
  loads: number;
  fallbacks: number;
  errors: number;
}

export interface CacheClient {
  get<T = unknown>(key: string): Promise<T | undefined>;
  getMany<T = unknown>(keys: string[]): Promise<Map<string, T>>;
  set(key: string, value: unknown, opts?: { ttlSeconds?: number }): Promise<boolean>;
  delete(key: string): Promise<boolean>;
  getOrSet<T>(key: string, loader: () => T | Promise<T>, opts?: GetOrSetOptions): Promise<T>;
  stats(): ClientStats;
}

export function createCacheClient(binding: CacheServiceBinding | undefined, opts: CacheClientOptions = {}): CacheClient {
  const counters: ClientStats = { hits: 0, misses: 0, stale: 0, loads: 0, fallbacks: 0, errors: 0 };
  const log = (event: string, fields: Record<string, unknown>) => {
    const line = JSON.stringify({ tag: "DUAL_CACHE_DO", event, ts: Date.now(), ...fields });
    if (opts.log) opts.log(line);
    else if (event !== "hit" && event !== "miss") console.warn(line);
  };

  /** The last resort: the snapshot straight from KV, read-only, read once for all `keys`. */
  async function fromKv(keys: string[], reason: string): Promise<Record<string, ServiceRead>> {
    const out: Record<string, ServiceRead> = {};
    for (const key of keys) {
      counters.fallbacks++;
      log("fallback", { key, reason });
    }
    const kv = opts.kv;
    const read = kv ? await readSnapshot((k) => kv.get(k, "text")) : null;
    const now = Date.now();
    for (const key of keys) {
      const entry = read?.ok ? findLive(read.snapshot, key, now) : undefined;
      if (entry) out[key] = { found: true, value: entry.value, source: "kv" };
      else if (!read) out[key] = { found: false, source: "none", fallbackReason: reason };
      else out[key] = { found: false, source: read.ok ? "kv" : "none" };
    }
    return out;
  }

  const fromKvOne = async (key: string, reason: string) => (await fromKv([key], reason))[key]!;

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
    if (!binding) return fromKvOne(key, "no TFTCACHE service binding");
    try {
      return await binding.get(key);
    } catch (err) {
      counters.errors++;
      return fromKvOne(key, `tftcache unreachable: ${(err as Error).message}`);
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
      try {
        if (!binding) throw new Error("no TFTCACHE service binding");
        reads = await binding.getMany(keys);
      } catch (err) {
        counters.errors++;
        reads = await fromKv(keys, `tftcache unreachable: ${(err as Error).message}`);
      }
      for (const key of keys) {
        const r = reads[key] ?? { found: false, source: "none" as const };
        count(r, key);
        if (r.found) out.set(key, r.value as T);
      }
      return out;
    },

    async set(key, value, setOpts = {}) {
      try {
        const r = binding ? await binding.set(key, value, setOpts) : { ok: false, error: "no TFTCACHE service binding" };
        if (!r.ok) log("set_failed", { key, error: r.error });
        return r.ok;
      } catch (err) {
        counters.errors++;
        log("set_failed", { key, error: (err as Error).message });
        return false;
      }
    },

    async delete(key) {
      try {
        return binding ? (await binding.delete(key)).deleted : false;
      } catch {
        counters.errors++;
        return false;
      }
    },

    async getOrSet<T>(key: string, loader: () => T | Promise<T>, gsOpts: GetOrSetOptions = {}): Promise<T> {
      let r: ServiceGetOrSet;
      try {
        if (!binding) throw new Error("no TFTCACHE service binding");
        r = await binding.getOrSet(key, loader, gsOpts);
      } catch (err) {
        counters.errors++;
        const kv = await fromKvOne(key, `tftcache unreachable: ${(err as Error).message}`);
        if (kv.found) {
          counters.hits++;
          return kv.value as T;
        }
        counters.misses++;
        counters.loads++;
        return loader();
      }
      if (!r.ok) throw new Error(r.error ?? `getOrSet ${key} failed`);
      if (r.source === "kv") counters.fallbacks++;
      if (r.state === "hit") counters.hits++;
      else if (r.state === "stale") {
        counters.hits++;
        counters.stale++;
        if (opts.ctx && binding) {
          const b = binding;
          opts.ctx.waitUntil(b.refresh(key, loader, gsOpts).catch((err: Error) => log("refresh_failed", { key, error: err.message })));
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
