import {
  canonicalJson,
  effectiveLoadTimeout,
  errorMessage,
  getOrSetProblem,
  settleWithin,
  tooOld,
  type GetOrSetErrorCode,
  type GetOrSetOptions,
  type GetOrSetState,
} from "../../protocol/index.js";
import type { Logger } from "../log.js";
import type { Result } from "../result.js";
import type { EntryInput, StoredEntryView } from "./cache-do.js";
import { LoaderBackoff, NegativeCache } from "./stale-if-error.js";

/**
 * What getOrSet and refresh answer: the value as canonical JSON text and how it was obtained (`staleIfError`: the
 * loader failed and this is the expired value), or "not found" cached by negativeTtlSeconds, or why not.
 */
export type ReadThroughData =
  | { valueJson: string; state: GetOrSetState; staleIfError?: true; notFound?: undefined; /** The stored entry a hit came from (provenance). */ hit?: StoredEntryView }
  | { valueJson?: undefined; state: GetOrSetState; notFound: true; staleIfError?: undefined };
export type ReadThroughResult = { ok: true; data: ReadThroughData } | { ok: false; code: GetOrSetErrorCode; message: string };

type Loaded = { ok: true; valueJson: string; notFound?: undefined } | { ok: true; notFound: true; valueJson?: undefined } | { ok: false; code: GetOrSetErrorCode; message: string };

/** One load in flight: the promise every caller for the key awaits, and how many joined it. */
interface Flight {
  done: Promise<Loaded>;
  joined: number;
}

/** What the read-through half needs from the cache. */
export interface ReadThroughHost {
  /** A counted read (hits, misses, expiry): what a plain get does. */
  getEntry(key: string): Promise<Result<StoredEntryView>>;
  /** The stored value text if the key is fresh now (neither stale nor expired); no read is counted. */
  freshValue(key: string): string | undefined;
  putEntry(input: EntryInput): Promise<Result<unknown>>;
  /**
   * The value stale-if-error may serve (see servableStale): held, and no more than `withinMs` past its expiry;
   * with when it was stored, for maxStalenessMs.
   */
  staleValue(key: string, withinMs: number): { valueJson: string; cachedAt: number } | undefined;
  now(): number;
  log: Logger;
}

const failed = (code: GetOrSetErrorCode, message: string): { ok: false; code: GetOrSetErrorCode; message: string } => ({ ok: false, code, message });

/**
 * Read-through with single flight, for application code (CacheService). The loader is the caller's function,
 * called back over RPC; at most one load per key runs at a time and every concurrent caller joins it. A load is
 * bounded by loadTimeoutMs: past it every waiter is answered and the slot freed, so a loader that never settles
 * cannot hold a key for ever.
 */
export class ReadThrough {
  readonly #host: ReadThroughHost;
  readonly #inflight = new Map<string, Flight>();
  /** stale-if-error's per-key backoff after a failed load (worker/cache/stale-if-error.ts). */
  readonly #backoff = new LoaderBackoff();
  /** "Not found" answers cached by negativeTtlSeconds. */
  readonly #negative = new NegativeCache();

  constructor(host: ReadThroughHost) {
    this.#host = host;
  }

  /** A write, delete or purge of the key: its cached "not found" and its loader backoff no longer apply. */
  forget(key: string): void {
    this.#negative.forget(key);
    this.#backoff.forget(key);
  }

  forgetPrefix(prefix: string): void {
    this.#negative.forgetPrefix(prefix);
    this.#backoff.forgetPrefix(prefix);
  }

  forgetAll(): void {
    this.#negative.clear();
    this.#backoff.clear();
  }

  /** How many callers joined the load in flight for `key`, or null when none runs (tests wait on this). */
  joinedCount(key: string): number | null {
    return this.#inflight.get(key)?.joined ?? null;
  }

  /** Several keys in one call, each a counted read; absent or expired keys map to null. A Map, so any key works. */
  async getMany(keys: string[]): Promise<Map<string, StoredEntryView | null>> {
    const out = new Map<string, StoredEntryView | null>();
    if (!Array.isArray(keys)) return out;
    for (const key of keys) {
      const r = await this.#host.getEntry(key);
      out.set(key, r.ok ? r.data : null);
    }
    return out;
  }

  /**
   * A fresh hit returns at once; a stale hit (inside the stale-while-revalidate window) returns the old value
   * with state "stale" so the caller can refresh it in its own waitUntil; a miss runs `loader` once per key
   * however many callers miss at the same time. A loader that throws or times out caches nothing and fails every
   * caller that joined it.
   */
  async getOrSet(key: string, loader: () => unknown, opts: GetOrSetOptions = {}): Promise<ReadThroughResult> {
    const problem = getOrSetProblem(key, loader, opts);
    if (problem) return failed("bad_request", problem);
    if (this.#negative.has(key, this.#host.now())) {
      this.#host.log("debug", "DUAL_CACHE_DO", "negative_hit", { key });
      return { ok: true, data: { notFound: true, state: "hit" } };
    }
    const cached = await this.#host.getEntry(key);
    // maxStalenessMs: a value older than the caller accepts is a miss (the loader runs), not a too-old answer.
    if (cached.ok && !tooOld(cached.data.cachedAt, this.#host.now(), opts.maxStalenessMs)) {
      return { ok: true, data: { valueJson: cached.data.valueJson, state: cached.data.stale ? "stale" : "hit", hit: cached.data } };
    }
    return this.#loadOrStale(key, loader, opts);
  }

  /** Re-runs the loader for a stale key unless a load is already in flight (then joins it) or it is fresh again. */
  async refresh(key: string, loader: () => unknown, opts: GetOrSetOptions = {}): Promise<ReadThroughResult> {
    const problem = getOrSetProblem(key, loader, opts);
    if (problem) return failed("bad_request", problem);
    const fresh = this.#inflight.has(key) ? undefined : this.#host.freshValue(key);
    if (fresh !== undefined) return { ok: true, data: { valueJson: fresh, state: "hit" } };
    return this.#loadOrStale(key, loader, opts);
  }

  /**
   * stale-if-error around a load: during the key's backoff the value it may serve is served without calling the
   * loader; a load that throws or times out is answered with it (and starts or lengthens the backoff). Without
   * staleIfErrorSeconds, or with nothing left to serve, the load's own outcome is the answer.
   */
  async #loadOrStale(key: string, loader: () => unknown, opts: GetOrSetOptions): Promise<ReadThroughResult> {
    const withinMs = Math.round((opts.staleIfErrorSeconds ?? 0) * 1000);
    if (withinMs > 0) {
      const retryAt = this.#backoff.until(key, this.#host.now());
      const old = retryAt === null ? undefined : this.#staleWithin(key, withinMs, opts);
      if (old !== undefined) {
        this.#host.log("info", "DUAL_CACHE_DO", "stale_if_error", { key, reason: "backoff", retryAt });
        return { ok: true, data: { valueJson: old, state: "stale", staleIfError: true } };
      }
    }
    const result = await this.#loadOnce(key, loader, opts);
    if (result.ok || withinMs === 0 || (result.code !== "loader_failed" && result.code !== "loader_timeout")) return result;
    const old = this.#staleWithin(key, withinMs, opts);
    if (old === undefined) return result;
    this.#host.log("warn", "DUAL_CACHE_DO", "stale_if_error", { key, reason: result.code, error: result.message, retryAt: this.#backoff.until(key, this.#host.now()) });
    return { ok: true, data: { valueJson: old, state: "stale", staleIfError: true } };
  }

  /**
   * The expired value stale-if-error may serve, unless it is older than the caller's maxStalenessMs: that bound
   * holds for every answer, a stale-if-error one included (then the loader's error stands).
   */
  #staleWithin(key: string, withinMs: number, opts: GetOrSetOptions): string | undefined {
    const old = this.#host.staleValue(key, withinMs);
    if (old === undefined || tooOld(old.cachedAt, this.#host.now(), opts.maxStalenessMs)) return undefined;
    return old.valueJson;
  }

  async #loadOnce(key: string, loader: () => unknown, opts: GetOrSetOptions): Promise<ReadThroughResult> {
    const running = this.#inflight.get(key);
    if (running) {
      running.joined++;
      const joined = await running.done;
      if (!joined.ok) return joined;
      return { ok: true, data: joined.notFound ? { notFound: true, state: "joined" } : { valueJson: joined.valueJson, state: "joined" } };
    }
    const flight: Flight = { done: this.#load(key, loader, opts), joined: 0 };
    this.#inflight.set(key, flight);
    try {
      const result = await flight.done;
      if (!result.ok) return result;
      return { ok: true, data: result.notFound ? { notFound: true, state: "loaded" } : { valueJson: result.valueJson, state: "loaded" } };
    } finally {
      if (this.#inflight.get(key) === flight) this.#inflight.delete(key);
    }
  }

  async #load(key: string, loader: () => unknown, opts: GetOrSetOptions): Promise<Loaded> {
    const name = JSON.stringify(key);
    const timeoutMs = effectiveLoadTimeout(opts);
    const settled = await settleWithin(() => loader(), timeoutMs);
    if (settled.status !== "ok") this.#backoff.failed(key, this.#host.now());
    if (settled.status === "timeout") {
      this.#host.log("warn", "DUAL_CACHE_DO", "loader_timeout", { key, timeoutMs });
      return failed("loader_timeout", `loader for ${name} did not settle within ${timeoutMs} ms`);
    }
    if (settled.status === "threw") {
      const message = errorMessage(settled.error);
      this.#host.log("warn", "DUAL_CACHE_DO", "loader_failed", { key, error: message });
      return failed("loader_failed", `loader for ${name} failed: ${message}`);
    }
    this.#backoff.forget(key);
    if (settled.value === undefined) {
      if (opts.negativeTtlSeconds === undefined) return failed("not_cacheable", `loader for ${name} returned undefined, which cannot be cached`);
      // "Not found", cached for its own TTL (memory only: no entry, so no reader but getOrSet ever sees it).
      this.#negative.set(key, this.#host.now() + Math.round(opts.negativeTtlSeconds * 1000));
      this.#host.log("debug", "DUAL_CACHE_DO", "negative_cached", { key, ttlSeconds: opts.negativeTtlSeconds });
      return { ok: true, notFound: true };
    }
    let valueJson: string;
    try {
      valueJson = canonicalJson(settled.value);
    } catch (err) {
      return failed("not_cacheable", `loader for ${name} returned a value JSON cannot represent: ${errorMessage(err)}`);
    }
    const input: EntryInput = { key, value: valueJson };
    if (opts.ttlSeconds !== undefined) input.ttlSeconds = opts.ttlSeconds;
    if (opts.staleWhileRevalidateSeconds !== undefined) input.staleWhileRevalidateSeconds = opts.staleWhileRevalidateSeconds;
    if (opts.staleIfErrorSeconds !== undefined) input.staleIfErrorSeconds = opts.staleIfErrorSeconds;
    if (opts.ttlJitter !== undefined) input.ttlJitter = opts.ttlJitter;
    let put: Result<unknown>;
    try {
      put = await this.#host.putEntry(input);
    } catch (err) {
      this.#host.log("error", "DUAL_CACHE_DO", "store_failed", { key, error: errorMessage(err) });
      return failed("cache_error", `storing ${name} failed: ${errorMessage(err)}`);
    }
    if (!put.ok) return failed(put.code === "too_large" ? "not_cacheable" : put.code === "bad_request" ? "bad_request" : "cache_error", put.message);
    return { ok: true, valueJson };
  }
}
