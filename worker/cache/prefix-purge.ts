import { MAX_KEY_BYTES, SNAPSHOT_FRESH_UNTIL_BYTES, utf8Length, type PurgeMode, type PurgeResult } from "../../protocol/index.js";
import { fail, ok, type Result } from "../result.js";
import type { MutationHost } from "./mutation-host.js";

/** What a prefix purge needs from the cache (CacheDurableObject passes its own parts). */
export interface PurgeHost extends MutationHost {
  /** Keys deleted or evicted: dropped from the lazily persisted read times. */
  dropped(keys: string[], evicted: boolean): void;
  /** Cached "not found" answers and loader backoff under the prefix no longer apply. */
  forgetPrefix(prefix: string): void;
}

/**
 * The one check of a purge prefix, for every path (CacheService.deletePrefix over RPC, `DELETE /entries?prefix=`,
 * `tftcache purge`): a non-empty string of at most MAX_KEY_BYTES (512) bytes of UTF-8, any characters. No key is
 * longer, so a longer prefix could match nothing; "." and ".." are fine (keys like "..x" exist; they are refused
 * as whole keys only because URL parsers collapse them as path segments, which a query parameter never is).
 */
export function prefixProblem(prefix: unknown): string | null {
  if (typeof prefix !== "string") return "prefix must be a string";
  if (prefix === "") return "prefix must not be empty (to delete everything, clear the cache)";
  if (utf8Length(prefix) > MAX_KEY_BYTES) return `prefix is longer than ${MAX_KEY_BYTES} bytes (no key is longer)`;
  return null;
}

/**
 * Invalidation by prefix, the one DO operation behind CacheService.deletePrefix, `DELETE /entries?prefix=P` and
 * `tftcache purge`. Hard deletes every entry whose key starts with `prefix`; soft keeps them and ends their fresh
 * period now (freshUntil = now), so the next getOrSet serves the old value as stale while one refresh loads it
 * and a plain get still finds it (stale: true) until its expiry. Either way: memory and SQLite in one transaction,
 * one generation, and KV with the next flush (2 KV writes whatever the number of keys).
 */
export async function purgePrefix(host: PurgeHost, prefix: string, mode: PurgeMode, now: number): Promise<Result<PurgeResult>> {
  const problem = prefixProblem(prefix);
  if (problem) return fail(400, "bad_request", problem);
  if (mode !== "hard" && mode !== "soft") return fail(400, "bad_request", 'mode must be "hard" or "soft"');
  host.forgetPrefix(prefix);
  if (mode === "hard") {
    // Every row goes, expired ones stale-if-error keeps included; `deleted` counts the live ones, the entries a
    // get, a listing or `purge --dry-run` could see (a kept row is invisible to them all).
    const keys: string[] = [];
    let visible = 0;
    for (const [key, entry] of host.index.entries()) {
      if (!key.startsWith(prefix)) continue;
      keys.push(key);
      if (entry.expiresAt > now) visible++;
    }
    // The generation this purge committed (or found), not whatever a later write made it by the time it answers.
    let generation = host.generation();
    if (keys.length > 0) {
      generation = host.mutate(() => {
        for (const key of keys) host.index.delete(key);
        host.dropped(keys, false);
        host.store.deleteEntries(keys);
      });
      await host.afterMutation();
    }
    host.log("info", "CACHE_DO_CLEAR", "purged", { prefix, deleted: visible, rows: keys.length, generation });
    return ok({ prefix, deleted: visible, generation });
  }
  // Soft: live entries still fresh. Their snapshot entry gains a freshUntil field if it had none: size grows.
  const marked: Array<[string, { freshUntil: number; size: number }]> = [];
  for (const [key, entry] of host.index.entries()) {
    if (!key.startsWith(prefix) || entry.expiresAt <= now || (entry.freshUntil !== undefined && entry.freshUntil <= now)) continue;
    marked.push([key, { freshUntil: now, size: entry.size + (entry.freshUntil === undefined ? SNAPSHOT_FRESH_UNTIL_BYTES : 0) }]);
  }
  let evicted = 0;
  let generation = host.generation();
  if (marked.length > 0) {
    generation = host.mutate(() => {
      for (const [key, m] of marked) host.index.peek(key)!.freshUntil = m.freshUntil;
      const overflow = host.index.resize(marked.map(([key, m]) => [key, m.size]));
      host.store.markStale(marked);
      if (overflow.length > 0) {
        host.store.deleteEntries(overflow);
        host.dropped(overflow, true);
        evicted = overflow.length;
      }
    });
    await host.afterMutation();
  }
  host.log("info", "CACHE_DO_CLEAR", "purged", { prefix, mode, marked: marked.length, evicted, generation });
  return ok({ prefix, deleted: 0, mode: "soft", marked: marked.length, generation });
}
