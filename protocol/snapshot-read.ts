import { ENTRIES_KEY, checkDigest, parseEntriesSnapshot, type EntriesSnapshot, type SnapshotEntry } from "./snapshot.js";

export type SnapshotRead = { ok: true; snapshot: EntriesSnapshot } | { ok: false; reason: string };

/** Anything that can fetch a KV value as text: a KV binding, or a REST client. */
export type TextGetter = (key: string) => Promise<string | null>;

/**
 * Reads and verifies the KV snapshot. A torn or corrupt snapshot is treated as absent rather than served: this
 * is the read path of every Worker that falls back to KV.
 */
export async function readSnapshot(get: TextGetter): Promise<SnapshotRead> {
  let text: string | null;
  try {
    text = await get(ENTRIES_KEY);
  } catch (err) {
    return { ok: false, reason: `KV read failed: ${(err as Error).message}` };
  }
  if (text === null) return { ok: false, reason: `${ENTRIES_KEY} is absent` };
  const parsed = parseEntriesSnapshot(text);
  if (!parsed.ok) return { ok: false, reason: parsed.error };
  const digest = await checkDigest(parsed.value);
  if (!digest.intact) return { ok: false, reason: `${ENTRIES_KEY} is torn (digest mismatch)` };
  return { ok: true, snapshot: parsed.value };
}

/** The live entry for `key` in a snapshot, or undefined. */
export function findLive(snapshot: EntriesSnapshot, key: string, now: number): SnapshotEntry | undefined {
  const found = snapshot.entries.find(([k, e]) => k === key && e.expiresAt > now);
  return found?.[1];
}
