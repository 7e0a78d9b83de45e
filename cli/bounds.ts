import { MAX_LIST_LIMIT, type Metadata } from "../protocol/index.js";
import type { AdminClient } from "./http/admin-client.js";
import { formatBytes } from "./output.js";

export interface BoundsCheck {
  /** Entries and bytes the cache would hold after the write, before any eviction. */
  entries: number;
  bytes: number;
  maxEntries: number;
  maxBytes: number;
  /** How many existing entries the write replaces (same key): they do not add to the total. */
  replaced: number;
  /** Each bound the write would cross, in words that name the Worker's setting; empty when it fits. */
  exceeded: string[];
  /**
   * True when the input alone is over a bound, so the write would evict some of its own entries. Otherwise a
   * crossing only evicts older entries, least recently used first: an LRU cache's normal state when it is full.
   */
  selfEvicting: boolean;
}

const fmt = (n: number) => n.toLocaleString("en-US");

function exceededBounds(entries: number, bytes: number, meta: Metadata, what: string): string[] {
  const out: string[] = [];
  const { maxEntries, maxBytes } = meta.limits;
  if (entries > maxEntries) out.push(`${what} ${fmt(entries)} entries, over the cache's bound of ${fmt(maxEntries)} (CACHE_MAX_ENTRIES)`);
  if (bytes > maxBytes) out.push(`${what} ${formatBytes(bytes)} (${fmt(bytes)} bytes as the KV snapshot counts them), over the cache's bound of ${formatBytes(maxBytes)} (CACHE_MAX_BYTES)`);
  return out;
}

/**
 * Would writing these entries (key → what each costs against CACHE_MAX_BYTES, later duplicates already folded in)
 * make the LRU evict at once? First the cheap upper bound: current size plus every new entry. Only if that crosses
 * a bound are the cache's keys listed, so entries the write merely replaces are not counted twice.
 */
export async function checkSeedBounds(admin: AdminClient, meta: Metadata, costs: ReadonlyMap<string, number>): Promise<BoundsCheck> {
  let seedBytes = 0;
  for (const c of costs.values()) seedBytes += c;
  const base = { maxEntries: meta.limits.maxEntries, maxBytes: meta.limits.maxBytes };
  // The seed alone is over a bound: nothing already cached can change that.
  const alone = exceededBounds(costs.size, seedBytes, meta, "the input alone holds");
  if (alone.length > 0) return { ...base, entries: costs.size, bytes: seedBytes, replaced: 0, exceeded: alone, selfEvicting: true };
  let entries = meta.size + costs.size;
  let bytes = meta.bytes + seedBytes;
  let replaced = 0;
  if (entries > meta.limits.maxEntries || bytes > meta.limits.maxBytes) {
    let cursor: string | null = null;
    do {
      const page = await admin.list({ cursor, limit: MAX_LIST_LIMIT });
      for (const k of page.keys) {
        if (costs.has(k.key)) {
          replaced++;
          entries--;
          bytes -= k.size;
        }
      }
      cursor = page.cursor;
    } while (cursor !== null);
  }
  return { ...base, entries, bytes, replaced, exceeded: exceededBounds(entries, bytes, meta, `the cache would hold`), selfEvicting: false };
}

/** The same question for a restore, which replaces everything: only the file's own live entries count. */
export function checkRestoreBounds(meta: Metadata, entries: number, bytes: number): BoundsCheck {
  const exceeded = exceededBounds(entries, bytes, meta, "the file holds");
  return { maxEntries: meta.limits.maxEntries, maxBytes: meta.limits.maxBytes, entries, bytes, replaced: 0, exceeded, selfEvicting: exceeded.length > 0 };
}
