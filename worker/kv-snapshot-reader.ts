import { ENTRIES_KEY, checkDigest, parseEntriesSnapshot, type EntriesSnapshot } from "../protocol/index.js";

export type SnapshotRead = { ok: true; snapshot: EntriesSnapshot } | { ok: false; reason: string };

/**
 * Reads and verifies the KV snapshot: the read path when the DO is bypassed (FEATURE_FLAG_DO_CACHE=false) or
 * unreachable. A torn or corrupt snapshot is treated as absent rather than served.
 */
export async function readKvSnapshot(kv: KVNamespace): Promise<SnapshotRead> {
  let text: string | null;
  try {
    text = await kv.get(ENTRIES_KEY, "text");
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
