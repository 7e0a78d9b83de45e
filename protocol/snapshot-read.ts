import { ENTRIES_KEY, checkDigest, parseEntriesSnapshot, type EntriesSnapshot, type SnapshotEntry } from "./snapshot.js";

export type VerifiedSnapshot =
  | { ok: true; snapshot: EntriesSnapshot }
  | { ok: false; status: "corrupt"; reason: string }
  /** Well-formed, but the entries do not hash to the digest it claims. */
  | { ok: false; status: "torn"; reason: string; snapshot: EntriesSnapshot; actualDigest: string };

export type SnapshotRead = VerifiedSnapshot | { ok: false; status: "absent" | "unreadable"; reason: string };

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
    return { ok: false, status: "unreadable", reason: `KV get failed: ${(err as Error).message}` };
  }
  if (text === null) return { ok: false, status: "absent", reason: `${ENTRIES_KEY} is absent` };
  return verifySnapshotText(text);
}

/** Parses `do_cache_entries` text and checks its digest: for callers that fetched the text themselves. */
export async function verifySnapshotText(text: string): Promise<VerifiedSnapshot> {
  const parsed = parseEntriesSnapshot(text);
  if (!parsed.ok) return { ok: false, status: "corrupt", reason: parsed.error };
  let digest: { intact: boolean; actual: string };
  try {
    digest = await checkDigest(parsed.value);
  } catch (err) {
    // A value nested too deep to walk, or otherwise not canonical JSON: no writer of ours produced it.
    return { ok: false, status: "corrupt", reason: `${ENTRIES_KEY} holds a value that cannot be canonicalised: ${(err as Error).message}` };
  }
  if (!digest.intact) {
    const reason = `digest mismatch: snapshot claims ${parsed.value.digest}, entries hash to ${digest.actual}`;
    return { ok: false, status: "torn", snapshot: parsed.value, actualDigest: digest.actual, reason };
  }
  return { ok: true, snapshot: parsed.value };
}

/** The live entry for `key` in a snapshot, or undefined. */
export function findLive(snapshot: EntriesSnapshot, key: string, now: number): SnapshotEntry | undefined {
  const found = snapshot.entries.find(([k, e]) => k === key && e.expiresAt > now);
  return found?.[1];
}
