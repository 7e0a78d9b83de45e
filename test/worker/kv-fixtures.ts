import { env } from "cloudflare:workers";
import { clock } from "../../worker/clock.js";
import { ENTRIES_KEY, canonicalJson, digestEntries, type EntriesSnapshot, type SnapshotEntry } from "../../protocol/index.js";

/** Writes a well-formed `do_cache_entries` snapshot straight into KV, as another writer (or an old DO) would. */
export async function writeKvSnapshot(generation: number, values: Record<string, unknown>, ttlMs = 3_600_000): Promise<EntriesSnapshot> {
  const now = clock.now(); // the DO's (fake) time, so the entries are live for it
  const entries: Array<[string, SnapshotEntry]> = Object.entries(values).map(([key, value]) => [
    key,
    { value, expiresAt: now + ttlMs, lastAccessed: now, cachedAt: now },
  ]);
  const snapshot: EntriesSnapshot = { format: 1, generation, writtenAt: now, digest: await digestEntries(entries), entries };
  await env.CACHE_DO_KV.put(ENTRIES_KEY, JSON.stringify(snapshot));
  return snapshot;
}

export async function readKvJson<T = any>(key: string): Promise<T | null> {
  const text = await env.CACHE_DO_KV.get(key, "text");
  return text === null ? null : (JSON.parse(text) as T);
}

export const canonical = canonicalJson;
