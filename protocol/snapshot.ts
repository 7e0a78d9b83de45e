import { digestEntries } from "./digest.js";

/** The two KV keys of the shared snapshot (design.md §2). */
export const ENTRIES_KEY = "do_cache_entries";
export const STATS_KEY = "do_cache_stats";
export const SNAPSHOT_FORMAT = 1;

export interface SnapshotEntry {
  value: unknown;
  expiresAt: number;
  lastAccessed: number;
  cachedAt: number;
  /** Optional: end of the fresh period of a stale-while-revalidate entry. Not covered by the digest. */
  freshUntil?: number;
}

export interface EntriesSnapshot {
  format: 1;
  generation: number;
  writtenAt: number;
  digest: string;
  entries: Array<[string, SnapshotEntry]>;
}

/** The counters both the live `/stats` and the `do_cache_stats` key report. */
export interface CacheCounters {
  size: number;
  bytes: number;
  hits: number;
  misses: number;
  evictions: number;
  expirations: number;
  hitRate: number;
  oldestEntry: number | null;
  newestEntry: number | null;
}

export interface StatsSnapshot extends CacheCounters {
  format: 1;
  generation: number;
  writtenAt: number;
  kvWritesToday: number;
}

/** Metadata stored beside each KV key, so a reader can learn the generation without downloading 20 MiB. */
export interface SnapshotKeyMetadata {
  format: 1;
  generation: number;
  writtenAt: number;
  digest?: string;
  /**
   * How many live entries `do_cache_entries` holds at writtenAt (written since 0.2; absent on older snapshots).
   * Expired rows that stale-if-error keeps travel in it too (expiresAt before writtenAt) and are not counted.
   */
  entries?: number;
}

export type Parsed<T> = { ok: true; value: T } | { ok: false; error: string };

const isRecord = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);
const isTime = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);
const isCount = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;

function parseJson(text: string, what: string): Parsed<unknown> {
  try {
    return { ok: true, value: JSON.parse(text) };
  } catch (err) {
    return { ok: false, error: `${what} is not valid JSON (${(err as Error).message})` };
  }
}

/**
 * Structural validation of `do_cache_entries`. It does not check the digest (that is async and a separate
 * verdict: a well-formed snapshot whose digest disagrees is *torn*, see `checkDigest`).
 */
export function parseEntriesSnapshot(text: string): Parsed<EntriesSnapshot> {
  const json = parseJson(text, ENTRIES_KEY);
  if (!json.ok) return json;
  const s = json.value;
  if (!isRecord(s)) return { ok: false, error: `${ENTRIES_KEY} is not a JSON object` };
  if (s.format !== SNAPSHOT_FORMAT) return { ok: false, error: `${ENTRIES_KEY} has unsupported format ${JSON.stringify(s.format)}` };
  if (!isCount(s.generation)) return { ok: false, error: `${ENTRIES_KEY}.generation is not a non-negative integer` };
  if (!isTime(s.writtenAt)) return { ok: false, error: `${ENTRIES_KEY}.writtenAt is not a time` };
  if (typeof s.digest !== "string" || !s.digest.startsWith("sha256:")) return { ok: false, error: `${ENTRIES_KEY}.digest is missing` };
  if (!Array.isArray(s.entries)) return { ok: false, error: `${ENTRIES_KEY}.entries is not an array` };
  const seen = new Set<string>();
  for (let i = 0; i < s.entries.length; i++) {
    const pair: unknown = s.entries[i];
    if (!Array.isArray(pair) || pair.length !== 2 || typeof pair[0] !== "string" || !isRecord(pair[1])) {
      return { ok: false, error: `${ENTRIES_KEY}.entries[${i}] is not a [key, entry] pair` };
    }
    const [key, entry] = pair as [string, Record<string, unknown>];
    if (seen.has(key)) return { ok: false, error: `${ENTRIES_KEY}.entries[${i}] repeats key ${JSON.stringify(key)}` };
    seen.add(key);
    if (!("value" in entry)) return { ok: false, error: `${ENTRIES_KEY}.entries[${i}] has no value` };
    for (const field of ["expiresAt", "lastAccessed", "cachedAt"] as const) {
      if (!isTime(entry[field])) return { ok: false, error: `${ENTRIES_KEY}.entries[${i}].${field} is not a time` };
    }
  }
  return { ok: true, value: s as unknown as EntriesSnapshot };
}

export function parseStatsSnapshot(text: string): Parsed<StatsSnapshot> {
  const json = parseJson(text, STATS_KEY);
  if (!json.ok) return json;
  const s = json.value;
  if (!isRecord(s)) return { ok: false, error: `${STATS_KEY} is not a JSON object` };
  if (s.format !== SNAPSHOT_FORMAT) return { ok: false, error: `${STATS_KEY} has unsupported format ${JSON.stringify(s.format)}` };
  for (const field of ["generation", "size", "bytes", "hits", "misses", "evictions", "expirations", "kvWritesToday"] as const) {
    if (!isCount(s[field])) return { ok: false, error: `${STATS_KEY}.${field} is not a non-negative integer` };
  }
  if (!isTime(s.writtenAt)) return { ok: false, error: `${STATS_KEY}.writtenAt is not a time` };
  if (typeof s.hitRate !== "number") return { ok: false, error: `${STATS_KEY}.hitRate is not a number` };
  return { ok: true, value: s as unknown as StatsSnapshot };
}

/** The digest the entries actually hash to, and whether it is the one the snapshot claims. */
export async function checkDigest(snapshot: EntriesSnapshot): Promise<{ intact: boolean; actual: string }> {
  const actual = await digestEntries(snapshot.entries);
  return { intact: actual === snapshot.digest, actual };
}
