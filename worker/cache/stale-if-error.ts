import { STALE_IF_ERROR_BACKOFF_MS } from "../../protocol/index.js";
import { keptUntil, type MemoryEntry } from "./memory.js";

/** At most this many keys are remembered as failing (or as "not found"); the oldest are forgotten first. */
const MAX_TRACKED_KEYS = 10_000;

/**
 * Per-key backoff after a failed load (stale-if-error): 2 s after the first failure, doubling to 60 s. While a
 * key is backing off, a getOrSet with staleIfErrorSeconds that has an expired value to serve serves it without
 * calling the loader; a success forgets the key. Memory only: a restarted DO tries the loader again at once.
 */
export class LoaderBackoff {
  readonly #keys = new Map<string, { failures: number; until: number }>();

  /** Records a failed load; returns when the loader may be tried again. */
  failed(key: string, now: number): number {
    const failures = (this.#keys.get(key)?.failures ?? 0) + 1;
    const wait = Math.min(STALE_IF_ERROR_BACKOFF_MS.first * 2 ** Math.min(failures - 1, 30), STALE_IF_ERROR_BACKOFF_MS.max);
    const until = now + wait;
    this.#keys.delete(key);
    this.#keys.set(key, { failures, until });
    trim(this.#keys);
    return until;
  }

  /** When the loader may be tried again for `key`, if that is still in the future. */
  until(key: string, now: number): number | null {
    const b = this.#keys.get(key);
    return b && b.until > now ? b.until : null;
  }

  forget(key: string): void {
    this.#keys.delete(key);
  }

  forgetPrefix(prefix: string): void {
    for (const key of this.#keys.keys()) if (key.startsWith(prefix)) this.#keys.delete(key);
  }

  clear(): void {
    this.#keys.clear();
  }
}

/**
 * Negative caching: keys whose loader said "not found" (returned undefined) under negativeTtlSeconds, until when.
 * Memory only, by design: a "not found" is no entry, so get, listings, stats, the KV snapshot and the CLI never
 * see it; a write of the key forgets it, and a restart forgets them all (one more loader call per key).
 */
export class NegativeCache {
  readonly #until = new Map<string, number>();

  has(key: string, now: number): boolean {
    const until = this.#until.get(key);
    if (until === undefined) return false;
    if (until > now) return true;
    this.#until.delete(key);
    return false;
  }

  set(key: string, until: number): void {
    this.#until.delete(key);
    this.#until.set(key, until);
    trim(this.#until);
  }

  forget(key: string): void {
    this.#until.delete(key);
  }

  forgetPrefix(prefix: string): void {
    for (const key of this.#until.keys()) if (key.startsWith(prefix)) this.#until.delete(key);
  }

  clear(): void {
    this.#until.clear();
  }
}

function trim(map: Map<string, unknown>): void {
  for (const key of map.keys()) {
    if (map.size <= MAX_TRACKED_KEYS) break;
    map.delete(key);
  }
}

/**
 * The value stale-if-error may serve for an entry: it is still held (before its hard expiry, or kept past it by
 * stale-if-error) and the caller's window (`withinMs` past the expiry) has not ended.
 */
export const servableStale = (entry: MemoryEntry | undefined, now: number, withinMs: number): boolean =>
  entry !== undefined && keptUntil(entry) > now && entry.expiresAt + withinMs > now;
