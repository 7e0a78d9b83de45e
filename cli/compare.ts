import { canonicalJson, compareKeys, type EntriesSnapshot } from "../protocol/index.js";

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

/** Equal as canonical JSON; a value that cannot be canonicalised (nested too deep) equals nothing. */
function sameValue(a: unknown, b: unknown): boolean {
  try {
    return canonicalJson(a) === canonicalJson(b);
  } catch {
    return false;
  }
}

export const SYMBOL: Record<KeyVerdict, string> = { match: "=", differ: "~", onlyInDo: "+", onlyInKv: "-" };

/**
 * Key-by-key comparison of the DO's snapshot with KV's, on exactly what the digest covers (value and expiresAt;
 * lastAccessed moves on every read and is not state). Entries already expired at `now` are left out on both
 * sides: the DO no longer serves them and every KV reader skips them.
 */
export function compareSnapshots(doSnap: EntriesSnapshot, kvSnap: EntriesSnapshot | null, now: number): Comparison {
  const live = (snap: EntriesSnapshot | null) => new Map((snap?.entries ?? []).filter(([, e]) => e.expiresAt > now));
  const doMap = live(doSnap);
  const kvMap = live(kvSnap);
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
      if (!sameValue(d!.value, k!.value)) fields.push("value");
      if (d!.expiresAt !== k!.expiresAt) fields.push("expiresAt");
      item = fields.length === 0 ? { key, status: "match" } : { key, status: "differ", fields };
    }
    counts[item.status]++;
    items.push(item);
  }
  return { counts, items };
}
