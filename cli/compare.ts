import { canonicalJson, compareKeys, type EntriesSnapshot, type SnapshotEntry } from "../protocol/index.js";

export type KeyVerdict = "match" | "differ" | "onlyInDo" | "onlyInKv";

export interface CompareItem {
  key: string;
  status: KeyVerdict;
  /** What differs, for `differ`: the value, the expiry, or both. */
  fields?: Array<"value" | "expiresAt">;
}

export interface Comparison {
  counts: Record<KeyVerdict, number>;
  items: CompareItem[];
}

/** A value's canonical JSON, or null when it cannot be canonicalised (nested too deep): such a value equals nothing. */
function canonicalOrNull(value: unknown): string | null {
  try {
    return canonicalJson(value);
  } catch {
    return null;
  }
}

export const SYMBOL: Record<KeyVerdict, string> = { match: "=", differ: "~", onlyInDo: "+", onlyInKv: "-" };

/**
 * Key-by-key comparison of the DO's snapshot with KV's, on exactly what the digest covers (value and expiresAt;
 * lastAccessed moves on every read and is not state). Entries already expired at `now` are left out on both
 * sides: the DO no longer serves them and every KV reader skips them.
 *
 * Each value is canonicalised once: `kvCanonical` (in `kvSnap.entries` order) is what verifying KV's digest
 * already computed, and a DO value is canonicalised only when its key is in both snapshots.
 */
export function compareSnapshots(doSnap: EntriesSnapshot, kvSnap: EntriesSnapshot | null, now: number, kvCanonical?: readonly string[] | null): Comparison {
  const doMap = new Map<string, SnapshotEntry>();
  for (const [key, e] of doSnap.entries) if (e.expiresAt > now) doMap.set(key, e);
  const kvMap = new Map<string, { entry: SnapshotEntry; index: number }>();
  (kvSnap?.entries ?? []).forEach(([key, e], index) => {
    if (e.expiresAt > now) kvMap.set(key, { entry: e, index });
  });
  const keys = [...new Set([...doMap.keys(), ...kvMap.keys()])].sort(compareKeys);
  const counts: Record<KeyVerdict, number> = { match: 0, differ: 0, onlyInDo: 0, onlyInKv: 0 };
  const items: CompareItem[] = [];
  for (const key of keys) {
    const d = doMap.get(key);
    const k = kvMap.get(key);
    let item: CompareItem;
    if (d && !k) item = { key, status: "onlyInDo" };
    else if (!d && k) item = { key, status: "onlyInKv" };
    else {
      const fields: Array<"value" | "expiresAt"> = [];
      const kvText = kvCanonical?.[k!.index] ?? canonicalOrNull(k!.entry.value);
      const doText = canonicalOrNull(d!.value);
      if (doText === null || kvText === null || doText !== kvText) fields.push("value");
      if (d!.expiresAt !== k!.entry.expiresAt) fields.push("expiresAt");
      item = fields.length === 0 ? { key, status: "match" } : { key, status: "differ", fields };
    }
    counts[item.status]++;
    items.push(item);
  }
  return { counts, items };
}

/**
 * The comparison of two snapshots known to be equal (same generation, same verified digest): every live entry
 * matches. What `compareSnapshots` would return for them, without walking a second snapshot.
 */
export function allMatch(snap: EntriesSnapshot, now: number): Comparison {
  const items: CompareItem[] = snap.entries
    .filter(([, e]) => e.expiresAt > now)
    .map(([key]) => key)
    .sort(compareKeys)
    .map((key) => ({ key, status: "match" }));
  return { counts: { match: items.length, differ: 0, onlyInDo: 0, onlyInKv: 0 }, items };
}
