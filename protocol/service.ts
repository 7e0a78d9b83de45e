/** The CacheService RPC entrypoint's wire shapes, shared by the Worker and the application-side client. */
import { keyProblem, ttlProblem } from "./limits.js";

/** What getOrSet did: served a fresh value, served a stale one (refresh owed), or loaded it (alone or joined). */
export type GetOrSetState = "hit" | "stale" | "loaded" | "joined";

/** How long a load may run before its waiters are answered with `loader_timeout`, unless a call says otherwise. */
export const DEFAULT_LOAD_TIMEOUT_MS = 30_000;
/** The longest `loadTimeoutMs` a call may ask for: a single-flight slot is never held longer than this. */
export const MAX_LOAD_TIMEOUT_MS = 120_000;

export interface GetOrSetOptions {
  ttlSeconds?: number;
  /** Keep serving the old value this long past ttlSeconds while one refresh runs. */
  staleWhileRevalidateSeconds?: number;
  /**
   * How long the load may take (default 30,000 ms, at most 120,000). Past it every caller waiting for the key gets
   * `loader_timeout`, the key's single-flight slot is freed (the next request runs a new load) and whatever the
   * loader returns later is discarded.
   */
  loadTimeoutMs?: number;
  /**
   * Refuse a cached value older than this (now − cachedAt, in ms): the loader runs as on a miss, and a KV fallback
   * that old is not served. A miss rather than a too-old quote.
   */
  maxStalenessMs?: number;
  /**
   * stale-if-error: when the loader throws or times out, serve the expired value for up to this long past its
   * expiry (state "stale", staleIfError: true) instead of failing, and back off before trying the loader again for
   * the key (2 s doubling to 60 s; callers during the backoff get the stale value without calling the loader).
   * The value must have been stored by a getOrSet with this option: that is what keeps the expired row.
   */
  staleIfErrorSeconds?: number;
  /**
   * Negative caching: a loader that returns `undefined` ("not found") has that answer cached for this long, and
   * getOrSet returns `undefined` without calling the loader again until then. Without it `undefined` is not
   * cached (the loader runs on every call). `null` is an ordinary value and is cached as one.
   */
  negativeTtlSeconds?: number;
  /**
   * TTL jitter: a fraction from 0 to 1 (exclusive). The entry's TTL is shortened by a random part of it, up to
   * this fraction (ttlSeconds × (1 − ttlJitter × r), r uniform in [0, 1)), so a batch written together does not
   * expire in the same second. Never longer than ttlSeconds.
   */
  ttlJitter?: number;
}

/** set's options: a TTL (default CACHE_DEFAULT_TTL_SECONDS), and jitter as for getOrSet (GetOrSetOptions.ttlJitter). */
export interface SetOptions {
  ttlSeconds?: number;
  ttlJitter?: number;
}

/** The backoff after a failed load that stale-if-error covered: doubles from the first to the cap. */
export const STALE_IF_ERROR_BACKOFF_MS = { first: 2_000, max: 60_000 } as const;

/** Returns why a ttlJitter is unusable, or null. Undefined means none. */
export function ttlJitterProblem(jitter: unknown): string | null {
  if (jitter === undefined) return null;
  if (typeof jitter !== "number" || !Number.isFinite(jitter) || jitter < 0 || jitter >= 1) return "ttlJitter must be a number from 0 to 1 (exclusive): the fraction of ttlSeconds the jitter may take off";
  return null;
}

/** A TTL shortened by a random part of it, up to `jitter` (see GetOrSetOptions.ttlJitter); `random` in [0, 1). */
export const jitteredTtl = (ttlSeconds: number, jitter: number | undefined, random: () => number): number =>
  jitter ? ttlSeconds * (1 - jitter * Math.min(Math.max(random(), 0), 1)) : ttlSeconds;

/** deletePrefix: "hard" deletes the entries; "soft" marks them stale (served once more while refreshed). */
export type PurgeMode = "hard" | "soft";

export interface DeletePrefixOptions {
  /** Default "hard". */
  mode?: PurgeMode;
  /** Shorthand for mode: "soft" (design.md §7). */
  soft?: boolean;
}

export interface ServiceDeletePrefix {
  ok: boolean;
  mode: PurgeMode;
  /** Entries deleted (hard) or marked stale (soft). */
  count: number;
  generation?: number;
  error?: string;
}

/** The mode deletePrefix options ask for, or why they are unusable. */
export function purgeModeOf(opts: unknown): { mode: PurgeMode } | { problem: string } {
  if (opts === undefined) return { mode: "hard" };
  if (typeof opts !== "object" || opts === null || Array.isArray(opts)) return { problem: "options must be an object" };
  const { mode, soft } = opts as DeletePrefixOptions;
  if (mode !== undefined && mode !== "hard" && mode !== "soft") return { problem: 'mode must be "hard" or "soft"' };
  if (soft !== undefined && typeof soft !== "boolean") return { problem: "soft must be a boolean" };
  if (soft === true && mode === "hard") return { problem: 'soft: true contradicts mode: "hard"' };
  if (soft === false && mode === "soft") return { problem: 'soft: false contradicts mode: "soft"' };
  return { mode: mode ?? (soft ? "soft" : "hard") };
}

/**
 * Why getOrSet/refresh gave no value. `loader_failed` and `loader_timeout` are the loader's (the application's)
 * problem; the others are the cache's, and the client then answers from the loader without caching.
 */
export type GetOrSetErrorCode =
  /** key, ttlSeconds, staleWhileRevalidateSeconds, loadTimeoutMs or the loader itself unusable: nothing was loaded. */
  | "bad_request"
  /** The loader threw (or its result could not be sent to the cache). */
  | "loader_failed"
  /** The loader did not settle within loadTimeoutMs. */
  | "loader_timeout"
  /** The loaded value cannot be cached: undefined, not representable as JSON, or too large. */
  | "not_cacheable"
  /** The cache failed while storing the value. */
  | "cache_error";

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
  /** Provenance of a hit (additive, 0.3): when the value was stored in the cache (epoch ms). */
  cachedAt?: number;
  /**
   * How old the value is: now − cachedAt. From KV this is never less than the snapshot's own age (now − writtenAt:
   * the flush delay plus KV's caching), since an entry is always older than the snapshot that holds it.
   */
  ageMs?: number;
  /** The cache generation the answer reflects: the DO's current one, or the KV snapshot's. */
  generation?: number;
  /** From the DO: "memory" when its LRU held the value, "storage" when it was read from SQLite. */
  tier?: ReadTier;
  /** From KV: when the snapshot was written (epoch ms). */
  snapshotWrittenAt?: number;
  /** Set with found: false when a value existed but was older than maxStalenessMs. */
  tooOld?: boolean;
}

/** Which of the DO's tiers answered: its in-memory LRU, or its SQLite storage. */
export type ReadTier = "memory" | "storage";

/** Returns why a maxStalenessMs is unusable, or null. Undefined (and Infinity) mean no limit; NaN is refused. */
export function maxStalenessProblem(ms: unknown): string | null {
  if (ms === undefined || ms === Number.POSITIVE_INFINITY) return null;
  if (typeof ms !== "number" || !Number.isFinite(ms) || ms < 0) return "maxStalenessMs must be a number of milliseconds, 0 or more (Infinity: no limit)";
  return null;
}

/** Returns why a staleIfErrorSeconds is unusable, or null (the same bounds as a TTL). Undefined means none. */
export const staleIfErrorProblem = (seconds: unknown): string | null => ttlProblem(seconds)?.replace("ttlSeconds", "staleIfErrorSeconds") ?? null;

/** Whether a value cached at `cachedAt` is too old for a caller that accepts at most `maxStalenessMs`. */
export const tooOld = (cachedAt: number | undefined, now: number, maxStalenessMs: number | undefined): boolean =>
  maxStalenessMs !== undefined && cachedAt !== undefined && now - cachedAt > maxStalenessMs;

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
  /** Set when ok is false. */
  code?: GetOrSetErrorCode;
  /** Provenance of a cached answer (additive, 0.3), as in ServiceRead: absent for a value the loader just returned. */
  cachedAt?: number;
  ageMs?: number;
  generation?: number;
  tier?: ReadTier;
  /** The loader failed or timed out (now, or within the backoff after it did) and this is the expired value. */
  staleIfError?: boolean;
  /** The loader said "not found" (returned undefined) and negativeTtlSeconds cached that: there is no value. */
  notFound?: boolean;
}

/** Returns why a loadTimeoutMs is unusable, or null. Undefined means the default. */
export function loadTimeoutProblem(ms: unknown): string | null {
  if (ms === undefined) return null;
  if (typeof ms !== "number" || !Number.isInteger(ms) || ms < 1 || ms > MAX_LOAD_TIMEOUT_MS) {
    return `loadTimeoutMs must be an integer from 1 to ${MAX_LOAD_TIMEOUT_MS}`;
  }
  return null;
}

/** The load timeout a call gets: its own when usable, else the default. */
export const effectiveLoadTimeout = (opts: GetOrSetOptions | undefined): number =>
  opts && typeof opts === "object" && loadTimeoutProblem(opts.loadTimeoutMs) === null && opts.loadTimeoutMs !== undefined
    ? opts.loadTimeoutMs
    : DEFAULT_LOAD_TIMEOUT_MS;

/** Returns why a getOrSet/refresh call is unusable before anything is loaded, or null. */
export function getOrSetProblem(key: unknown, loader: unknown, opts: unknown): string | null {
  const k = keyProblem(key);
  if (k) return k;
  if (typeof loader !== "function") return "loader must be a function";
  if (opts === undefined) return null;
  if (typeof opts !== "object" || opts === null || Array.isArray(opts)) return "options must be an object";
  const o = opts as GetOrSetOptions;
  const t = ttlProblem(o.ttlSeconds);
  if (t) return t;
  const swr = ttlProblem(o.staleWhileRevalidateSeconds);
  if (swr) return swr.replace("ttlSeconds", "staleWhileRevalidateSeconds");
  const sie = staleIfErrorProblem(o.staleIfErrorSeconds);
  if (sie) return sie;
  const neg = ttlProblem(o.negativeTtlSeconds);
  if (neg) return neg.replace("ttlSeconds", "negativeTtlSeconds");
  const jitter = ttlJitterProblem(o.ttlJitter);
  if (jitter) return jitter;
  return maxStalenessProblem(o.maxStalenessMs) ?? loadTimeoutProblem(o.loadTimeoutMs);
}

export type Settled<T> = { status: "ok"; value: T } | { status: "threw"; error: unknown } | { status: "timeout" };

/**
 * Calls `run` (catching a synchronous throw too) and waits at most `ms` for it. On timeout the call is abandoned,
 * not cancelled: its later result is ignored, and a later rejection is swallowed.
 */
export function settleWithin<T>(run: () => T | Promise<T>, ms: number): Promise<Settled<T>> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const called = (async () => run())().then(
    (value): Settled<T> => ({ status: "ok", value }),
    (error: unknown): Settled<T> => ({ status: "threw", error }),
  );
  const timeout = new Promise<Settled<T>>((resolve) => {
    timer = setTimeout(() => resolve({ status: "timeout" }), ms);
  });
  return Promise.race([called, timeout]).finally(() => {
    if (timer !== undefined) clearTimeout(timer);
  });
}

/** An error's message, whatever was thrown. */
export const errorMessage = (err: unknown): string =>
  err instanceof Error ? err.message : typeof err === "object" && err !== null && "message" in err ? String((err as { message: unknown }).message) : String(err);

/**
 * A record keyed by caller-supplied keys. Every key becomes an own data property, so "__proto__", "constructor"
 * or "toString" are keys like any other (plain assignment to "__proto__" would replace the prototype instead).
 * The record keeps Object.prototype: workerd's RPC refuses to serialise null-prototype objects.
 */
export function keyedRecord<T>(entries: Iterable<readonly [string, T]>): Record<string, T> {
  const out: Record<string, T> = {};
  for (const [key, value] of entries) Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
  return out;
}

/** `record[key]` if the record itself has it: never something inherited from Object.prototype. */
export const ownValue = <T>(record: Record<string, T>, key: string): T | undefined =>
  Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;
