import { DIGEST_PREFIX, ENTRIES_KEY, STATS_KEY, canonicalJson, digestRows, type FlushedSnapshot, parseEntriesSnapshot, parseStatsSnapshot, type EntriesSnapshot, type StatsSnapshot } from "../protocol/index.js";
import { kvText, type KvBytes, type KvRestClient } from "./http/kv-client.js";

export type KeyState = "present" | "missing" | "unreadable" | "torn";

export interface EntriesKeyReport {
  key: typeof ENTRIES_KEY;
  state: KeyState;
  generation?: number;
  writtenAt?: number;
  digest?: string;
  actualDigest?: string;
  entries?: number;
  error?: string;
}

export interface StatsKeyReport {
  key: typeof STATS_KEY;
  state: Exclude<KeyState, "torn">;
  generation?: number;
  writtenAt?: number;
  error?: string;
}

export interface KvInspection {
  entries: EntriesKeyReport;
  stats: StatsKeyReport;
  /** The parsed snapshot when it is readable, torn or not, so a torn one can still be compared key by key. */
  snapshot: EntriesSnapshot | null;
  /**
   * Set instead of `snapshot` when KV's bytes are exactly the body the DO recorded flushing and the caller needs
   * no keys: the record describes the snapshot (every entry still live), so it was not parsed at all.
   */
  asFlushed: FlushedSnapshot | null;
  /** Each entry's value as canonical JSON, in `snapshot.entries` order: computed once, for the digest and the compare. */
  canonical: string[] | null;
  statsDoc: StatsSnapshot | null;
}

export type VerifiedText =
  | { ok: true; snapshot: EntriesSnapshot; canonical: string[] }
  | { ok: false; status: "corrupt"; reason: string }
  | { ok: false; status: "torn"; reason: string; snapshot: EntriesSnapshot; canonical: string[]; actualDigest: string };

/**
 * Parses `do_cache_entries` text and checks its digest, like protocol's `verifySnapshotText`, but keeps each
 * value's canonical JSON: the per-key compare reuses it instead of canonicalising every value again.
 */
export async function verifySnapshotCanonical(text: string): Promise<VerifiedText> {
  const parsed = parseEntriesSnapshot(text);
  if (!parsed.ok) return { ok: false, status: "corrupt", reason: parsed.error };
  const snapshot = parsed.value;
  let canonical: string[];
  try {
    canonical = snapshot.entries.map(([, e]) => canonicalJson(e.value));
  } catch (err) {
    return { ok: false, status: "corrupt", reason: `${ENTRIES_KEY} holds a value that cannot be canonicalised: ${(err as Error).message}` };
  }
  const actual = await digestRows(snapshot.entries.map(([key, e], i) => [key, canonical[i]!, e.expiresAt] as const));
  if (actual === snapshot.digest) return { ok: true, snapshot, canonical };
  return { ok: false, status: "torn", snapshot, canonical, actualDigest: actual, reason: `digest mismatch: snapshot claims ${snapshot.digest}, entries hash to ${actual}` };
}

export interface KvTexts {
  /** The entries key's bytes, decoded only when they must be parsed, and their SHA-256. */
  entries: KvBytes | null;
  stats: string | null;
  statsRead: boolean;
}

/** Both KV keys' raw text through the REST API (stats only when asked). */
export async function readKvTexts(kv: KvRestClient, opts: { stats: boolean } = { stats: true }): Promise<KvTexts> {
  const [entries, stats] = await Promise.all([kv.getValueBytes(ENTRIES_KEY), opts.stats ? kv.getValue(STATS_KEY) : Promise.resolve(null)]);
  return { entries, stats, statsRead: opts.stats };
}

/** Reads both KV keys through the REST API and says, for each, whether it is present, readable and intact. */
export async function inspectKv(kv: KvRestClient, opts: { stats: boolean } = { stats: true }): Promise<KvInspection> {
  return inspectKvTexts(await readKvTexts(kv, opts));
}

/**
 * Entries live when the snapshot was written: what the flush record, the key metadata and do_cache_stats count.
 * The rows stale-if-error keeps past their expiry travel in the snapshot but are not entries anyone is served.
 */
export const liveAtWrite = (snap: EntriesSnapshot): number => snap.entries.reduce((n, [, e]) => n + (e.expiresAt > snap.writtenAt ? 1 : 0), 0);

/**
 * Judges both keys. `flushed` is the DO's record of the body it last wrote: bytes that hash to its SHA-256 are
 * exactly what the DO wrote, so the digest holds without canonicalising every value again. With `needKeys`
 * false and every entry of the record still live at `now`, they are not even parsed: the record describes them.
 * Any other bytes are verified in full.
 */
export async function inspectKvTexts(texts: KvTexts, flushed?: FlushedSnapshot, opts: { needKeys: boolean; now: number } = { needKeys: true, now: Date.now() }): Promise<KvInspection> {
  const statsText = texts.stats;
  let snapshot: EntriesSnapshot | null = null;
  let canonical: string[] | null = null;
  let asFlushed: FlushedSnapshot | null = null;
  let entries: EntriesKeyReport;
  const asWritten = texts.entries !== null && flushed !== undefined && DIGEST_PREFIX + texts.entries.sha256 === flushed.sha256;
  const allLive = flushed !== undefined && (flushed.validUntil === null || opts.now < flushed.validUntil);
  /** The report of a readable snapshot (or of the record describing one): its header and live entry count. */
  const describe = (s: { generation: number; writtenAt: number; digest: string }, live: number, state: "present" | "torn" = "present"): EntriesKeyReport =>
    ({ key: ENTRIES_KEY, state, generation: s.generation, writtenAt: s.writtenAt, digest: s.digest, entries: live });
  if (texts.entries === null) entries = { key: ENTRIES_KEY, state: "missing" };
  else if (asWritten && allLive && !opts.needKeys) {
    asFlushed = flushed!;
    entries = describe(asFlushed, asFlushed.entries);
  } else {
    const text = kvText(texts.entries);
    const parsedAsWritten = asWritten ? parseEntriesSnapshot(text) : null;
    if (parsedAsWritten?.ok) {
      snapshot = parsedAsWritten.value;
      entries = describe(snapshot, liveAtWrite(snapshot));
    } else {
      const verified = await verifySnapshotCanonical(text);
      if (!verified.ok && verified.status === "corrupt") entries = { key: ENTRIES_KEY, state: "unreadable", error: verified.reason };
      else {
        snapshot = verified.snapshot;
        canonical = verified.canonical;
        entries = { ...describe(snapshot, liveAtWrite(snapshot), verified.ok ? "present" : "torn"), ...(verified.ok ? {} : { actualDigest: verified.actualDigest, error: verified.reason }) };
      }
    }
  }
  let statsDoc: StatsSnapshot | null = null;
  let stats: StatsKeyReport;
  if (!texts.statsRead) stats = { key: STATS_KEY, state: "missing", error: "not read" };
  else if (statsText === null) stats = { key: STATS_KEY, state: "missing" };
  else {
    const parsed = parseStatsSnapshot(statsText);
    if (!parsed.ok) stats = { key: STATS_KEY, state: "unreadable", error: parsed.error };
    else {
      statsDoc = parsed.value;
      stats = { key: STATS_KEY, state: "present", generation: parsed.value.generation, writtenAt: parsed.value.writtenAt };
    }
  }
  return { entries, stats, snapshot, asFlushed, canonical, statsDoc };
}
