/**
 * Answering a key from the KV snapshot, as the application client and CacheService both do when tftcache (or its
 * DO) cannot be reached: a live entry with its provenance, and the expired entry stale-if-error may serve.
 */
import type { ServiceRead } from "./service.js";
import type { CachedSnapshotRead } from "./snapshot-cache.js";
import type { SnapshotEntry } from "./snapshot.js";

type VerifiedRead = Extract<CachedSnapshotRead, { ok: true }>;

/**
 * now − when the entry was stored, never less than the snapshot's own age: a KV copy is the flush delay plus KV's
 * own caching behind the DO, and says so rather than looking fresh.
 */
export const kvAgeMs = (entry: SnapshotEntry, snapshotWrittenAt: number, now: number): number => Math.max(0, now - entry.cachedAt, now - snapshotWrittenAt);

/** A live entry of the snapshot as a read, with its provenance. */
export function kvHit(read: VerifiedRead, entry: SnapshotEntry, now: number): ServiceRead {
  const { generation, writtenAt } = read.snapshot;
  const hit: ServiceRead = { found: true, value: entry.value, expiresAt: entry.expiresAt, source: "kv", cachedAt: entry.cachedAt, ageMs: kvAgeMs(entry, writtenAt, now), generation, snapshotWrittenAt: writtenAt };
  if (entry.freshUntil !== undefined && entry.freshUntil <= now) hit.stale = true;
  return hit;
}

/**
 * stale-if-error from the snapshot: the key's entry if it expired no more than `withinMs` ago, with its age, unless
 * it is older than `maxStalenessMs` (a hard limit, stale-if-error included: then `tooOldMs` says how old). The
 * snapshot keeps the rows stale-if-error retains, so this holds across flushes after the expiry.
 */
export function kvStaleIfError(
  read: VerifiedRead,
  key: string,
  now: number,
  withinMs: number,
  maxStalenessMs: number | undefined,
): { entry: SnapshotEntry; ageMs: number; generation: number } | { tooOldMs: number } | null {
  const entry = read.entry(key);
  if (!entry || entry.expiresAt + withinMs <= now) return null;
  const ageMs = kvAgeMs(entry, read.snapshot.writtenAt, now);
  if (maxStalenessMs !== undefined && ageMs > maxStalenessMs) return { tooOldMs: ageMs };
  return { entry, ageMs, generation: read.snapshot.generation };
}
