import { STALE_IF_ERROR_BACKOFF_MS } from "../../protocol/index.js";
import { keptUntil, type MemoryEntry } from "./memory.js";

/** At most this many keys are remembered as failing (or as "not found"); the oldest are forgotten first. */
const MAX_TRACKED_KEYS = 10_000;

/**
 * Per-key state in memory (a backoff, a "not found"): at most MAX_TRACKED_KEYS keys, the least recently set
 * forgotten first; a write, a purge or a restore forgets a key, a prefix or all of them.
 */
class TrackedKeys<V> {
  readonly #map = new Map<string, V>();

  protected read(key: string): V | undefined {
    return this.#map.get(key);
  }

  protected remember(key: string, value: V): void {
    this.#map.delete(key); // re-inserted as the most recent
    this.#map.set(key, value);
    for (const k of this.#map.keys()) {
      if (this.#map.size <= MAX_TRACKED_KEYS) break;
      this.#map.delete(k);
    }
  }

  forget(key: string): void {
    this.#map.delete(key);
  }

  forgetPrefix(prefix: string): void {
    for (const key of this.#map.keys()) if (key.startsWith(prefix)) this.#map.delete(key);
  }

  clear(): void {
    this.#map.clear();
  }
}

/**
 * Per-key backoff after a failed load (stale-if-error): 2 s after the first failure, doubling to 60 s. While a
 * key is backing off, a getOrSet with staleIfErrorSeconds that has an expired value to serve serves it without
 * calling the loader; a success forgets the key. Memory only: a restarted DO tries the loader again at once.
 */
export class LoaderBackoff extends TrackedKeys<{ failures: number; until: number }> {
  /** Records a failed load; returns when the loader may be tried again. */
  failed(key: string, now: number): number {
    const failures = (this.read(key)?.failures ?? 0) + 1;
    const wait = Math.min(STALE_IF_ERROR_BACKOFF_MS.first * 2 ** Math.min(failures - 1, 30), STALE_IF_ERROR_BACKOFF_MS.max);
    const until = now + wait;
    this.remember(key, { failures, until });
    return until;
  }

  /** When the loader may be tried again for `key`, if that is still in the future. */
  until(key: string, now: number): number | null {
    const b = this.read(key);
    return b && b.until > now ? b.until : null;
  }
}

/**
 * Negative caching: keys whose loader said "not found" (returned undefined) under negativeTtlSeconds, until when.
 * Memory only, by design: a "not found" is no entry, so get, listings, stats, the KV snapshot and the CLI never
 * see it; a write of the key forgets it, and a restart forgets them all (one more loader call per key).
 */
export class NegativeCache extends TrackedKeys<number> {
  has(key: string, now: number): boolean {
    const until = this.read(key);
    if (until === undefined) return false;
    if (until > now) return true;
    this.forget(key);
    return false;
  }

  set(key: string, until: number): void {
    this.remember(key, until);
  }
}

/**
 * The value stale-if-error may serve for an entry: it is still held (before its hard expiry, or kept past it by
 * stale-if-error) and the caller's window (`withinMs` past the expiry) has not ended.
 */
export const servableStale = (entry: MemoryEntry | undefined, now: number, withinMs: number): boolean =>
  entry !== undefined && keptUntil(entry) > now && entry.expiresAt + withinMs > now;
