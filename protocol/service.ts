/** The CacheService RPC entrypoint's wire shapes, shared by the Worker and the application-side client. */

/** What getOrSet did: served a fresh value, served a stale one (refresh owed), or loaded it (alone or joined). */
export type GetOrSetState = "hit" | "stale" | "loaded" | "joined";

export interface GetOrSetOptions {
  ttlSeconds?: number;
  /** Keep serving the old value this long past ttlSeconds while one refresh runs. */
  staleWhileRevalidateSeconds?: number;
}

/** Where a read was answered: the DO, the KV snapshot (flag off or DO unreachable), or nowhere. */
export type ReadSource = "do" | "kv" | "none";

export interface ServiceRead {
  found: boolean;
  value?: unknown;
  expiresAt?: number;
  stale?: boolean;
  source: ReadSource;
  /** Why the DO was not used, when source is "kv" or "none". */
  fallbackReason?: string;
}

export interface ServiceWrite {
  ok: boolean;
  error?: string;
}

export interface ServiceGetOrSet {
  ok: boolean;
  value?: unknown;
  state?: GetOrSetState | "uncached";
  source: ReadSource | "loader";
  error?: string;
}
