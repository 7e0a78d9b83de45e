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
  /** Set when ok is false. */
  code?: GetOrSetErrorCode;
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
  return loadTimeoutProblem(o.loadTimeoutMs);
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
