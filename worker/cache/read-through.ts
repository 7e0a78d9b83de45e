import {
  canonicalJson,
  effectiveLoadTimeout,
  errorMessage,
  getOrSetProblem,
  settleWithin,
  type GetOrSetErrorCode,
  type GetOrSetOptions,
  type GetOrSetState,
} from "../../protocol/index.js";
import type { Logger } from "../log.js";
import type { Result } from "../result.js";
import type { EntryInput, StoredEntryView } from "./cache-do.js";

/** What getOrSet and refresh answer: the value as canonical JSON text and how it was obtained, or why not. */
export type ReadThroughResult =
  | { ok: true; data: { valueJson: string; state: GetOrSetState } }
  | { ok: false; code: GetOrSetErrorCode; message: string };

type Loaded = { ok: true; valueJson: string } | { ok: false; code: GetOrSetErrorCode; message: string };

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

  constructor(host: ReadThroughHost) {
    this.#host = host;
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
    const cached = await this.#host.getEntry(key);
    if (cached.ok) return { ok: true, data: { valueJson: cached.data.valueJson, state: cached.data.stale ? "stale" : "hit" } };
    return this.#loadOnce(key, loader, opts);
  }

  /** Re-runs the loader for a stale key unless a load is already in flight (then joins it) or it is fresh again. */
  async refresh(key: string, loader: () => unknown, opts: GetOrSetOptions = {}): Promise<ReadThroughResult> {
    const problem = getOrSetProblem(key, loader, opts);
    if (problem) return failed("bad_request", problem);
    const fresh = this.#inflight.has(key) ? undefined : this.#host.freshValue(key);
    if (fresh !== undefined) return { ok: true, data: { valueJson: fresh, state: "hit" } };
    return this.#loadOnce(key, loader, opts);
  }

  async #loadOnce(key: string, loader: () => unknown, opts: GetOrSetOptions): Promise<ReadThroughResult> {
    const running = this.#inflight.get(key);
    if (running) {
      running.joined++;
      const joined = await running.done;
      return joined.ok ? { ok: true, data: { valueJson: joined.valueJson, state: "joined" } } : joined;
    }
    const flight: Flight = { done: this.#load(key, loader, opts), joined: 0 };
    this.#inflight.set(key, flight);
    try {
      const result = await flight.done;
      return result.ok ? { ok: true, data: { valueJson: result.valueJson, state: "loaded" } } : result;
    } finally {
      if (this.#inflight.get(key) === flight) this.#inflight.delete(key);
    }
  }

  async #load(key: string, loader: () => unknown, opts: GetOrSetOptions): Promise<Loaded> {
    const name = JSON.stringify(key);
    const timeoutMs = effectiveLoadTimeout(opts);
    const settled = await settleWithin(() => loader(), timeoutMs);
    if (settled.status === "timeout") {
      this.#host.log("warn", "DUAL_CACHE_DO", "loader_timeout", { key, timeoutMs });
      return failed("loader_timeout", `loader for ${name} did not settle within ${timeoutMs} ms`);
    }
    if (settled.status === "threw") {
      const message = errorMessage(settled.error);
      this.#host.log("warn", "DUAL_CACHE_DO", "loader_failed", { key, error: message });
      return failed("loader_failed", `loader for ${name} failed: ${message}`);
    }
    if (settled.value === undefined) return failed("not_cacheable", `loader for ${name} returned undefined, which cannot be cached`);
    let valueJson: string;
    try {
      valueJson = canonicalJson(settled.value);
    } catch (err) {
      return failed("not_cacheable", `loader for ${name} returned a value JSON cannot represent: ${errorMessage(err)}`);
    }
    const input: EntryInput = { key, value: valueJson };
    if (opts.ttlSeconds !== undefined) input.ttlSeconds = opts.ttlSeconds;
    if (opts.staleWhileRevalidateSeconds !== undefined) input.staleWhileRevalidateSeconds = opts.staleWhileRevalidateSeconds;
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
