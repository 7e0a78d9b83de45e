import type { CacheDurableObject } from "./cache/cache-do.js";

/** Bindings and vars as wrangler.toml declares them. Vars arrive as strings (or numbers/booleans from TOML). */
export interface Env {
  CACHE_DO: DurableObjectNamespace<CacheDurableObject>;
  CACHE_DO_KV: KVNamespace;
  ADMIN_API_KEY?: string;
  /** Workers Rate Limiting binding: failed admin authentication per client (wrangler.toml [[ratelimits]]). */
  AUTH_RATE_LIMITER?: RateLimit;
  FEATURE_FLAG_DO_CACHE?: string | boolean;
  CACHE_MAX_ENTRIES?: string | number;
  CACHE_MAX_BYTES?: string | number;
  CACHE_DEFAULT_TTL_SECONDS?: string | number;
  KV_FLUSH_INTERVAL_SECONDS?: string | number;
  KV_DAILY_WRITE_BUDGET?: string | number;
  KV_SYNC_MODE?: string;
  LOG_LEVEL?: string;
}

const cacheIds = new WeakMap<DurableObjectNamespace, DurableObjectId>();

/**
 * The one cache instance every route and RPC method talks to. The id is derived once per isolate; the stub is
 * made per request, as stubs belong to the request that made them.
 */
export function cacheStub(env: Env) {
  let id = cacheIds.get(env.CACHE_DO);
  if (!id) {
    id = env.CACHE_DO.idFromName("cache");
    cacheIds.set(env.CACHE_DO, id);
  }
  return env.CACHE_DO.get(id);
}
