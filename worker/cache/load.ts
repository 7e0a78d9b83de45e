import { ENTRIES_KEY, canonicalJson, snapshotEntryBytes, type KvSnapshotReport, type LoadSource, type SnapshotKeyMetadata } from "../../protocol/index.js";
import { readKvSnapshot } from "../kv-snapshot-reader.js";
import type { MemoryEntry } from "./memory.js";
import type { EntryStorage, PersistedMeta } from "./storage.js";

/** The entries' `size` is what they cost in the KV snapshot (storage.ts PersistedMeta.sizeModel). */
export const SIZE_MODEL = 2;

export interface LoadedState {
  meta: PersistedMeta;
  /**
   * Every entry, least recently used first, when the load had them in hand (adopted from KV, or a one-off size
   * migration); otherwise the row count and byte total, and memory fills on use (EntryIndex).
   */
  start: { entries: Array<[string, MemoryEntry]> } | { count: number; bytes: number };
  generation: number;
  source: LoadSource;
  kvReport: KvSnapshotReport;
  /** KV's snapshot was not downloaded at start-up: check it for damage afterwards (the alarm does). */
  kvCheckPending: boolean;
}

/**
 * A cold start in milliseconds. DO storage is the usual source, and only its index is read (keys, times, sizes;
 * values on first use). KV's snapshot is downloaded only when it may be newer than DO storage: its generation is
 * learnt from the key's metadata with one `list` (every flush writes it), so a 20 MiB snapshot is neither fetched
 * nor hashed just to learn that it is older. An older or equal snapshot is still checked for damage, after
 * start-up (`checkKvSnapshot`), and a damaged one is replaced by the next flush, as before.
 */
export async function loadState(store: EntryStorage, kv: KVNamespace, now: number): Promise<LoadedState> {
  const meta = store.loadMeta();
  let start: LoadedState["start"];
  if (meta.sizeModel !== SIZE_MODEL) {
    // Once per DO, on the first start of 0.2: every row is read to recompute its size.
    const entries = store.loadIndex();
    resizeRows(store, entries);
    start = { entries };
  } else if (meta.entryCount !== null && meta.entryBytes !== null) {
    start = { count: meta.entryCount, bytes: meta.entryBytes };
  } else {
    start = store.countEntries();
  }
  const rowCount = "entries" in start ? start.entries.length : start.count;
  const hasDoData = rowCount > 0 || meta.generation > 0;
  const base = { meta, start, generation: meta.generation, source: (hasDoData ? "do" : "empty") as LoadSource };

  const listed = await kvMetadata(kv);
  if (listed.error !== undefined) {
    return { ...base, kvReport: { status: "unreadable", generation: null, error: listed.error, verified: false }, kvCheckPending: true };
  }
  if (!listed.present) return { ...base, kvReport: { status: "absent", generation: null, error: null, verified: true }, kvCheckPending: false };
  const kvGeneration = listed.metadata?.generation;
  if (typeof kvGeneration === "number" && kvGeneration <= meta.generation) {
    const status = kvGeneration < meta.generation ? "stale" : "ok";
    return { ...base, kvReport: { status, generation: kvGeneration, error: null, verified: false }, kvCheckPending: true };
  }

  // KV may be newer (or predates key metadata): download and verify it now, as a newer one must be adopted.
  const read = await readKvSnapshot(kv);
  if (!read.ok) {
    const report: KvSnapshotReport =
      read.status === "absent"
        ? { status: "absent", generation: null, error: null, verified: true }
        : { status: read.status, generation: read.status === "torn" ? read.snapshot.generation : null, error: read.reason, verified: true };
    return { ...base, kvReport: report, kvCheckPending: false };
  }
  const snapshot = read.snapshot;
  if (snapshot.generation <= meta.generation) {
    return { ...base, kvReport: { status: snapshot.generation < meta.generation ? "stale" : "ok", generation: snapshot.generation, error: null, verified: true }, kvCheckPending: false };
  }
  // KV is newer (the DO lost its storage or was moved): adopt it, once, as a full rewrite.
  const adopted = snapshot.entries
    .filter(([, e]) => e.expiresAt > now)
    .sort((a, b) => a[1].lastAccessed - b[1].lastAccessed)
    .map(([key, e]) => {
      const value = canonicalJson(e.value);
      const entry: MemoryEntry = { value, expiresAt: e.expiresAt, cachedAt: e.cachedAt, lastAccessed: e.lastAccessed, size: snapshotEntryBytes(key, value, typeof e.freshUntil === "number") };
      if (typeof e.freshUntil === "number") entry.freshUntil = e.freshUntil;
      return [key, entry] as [string, MemoryEntry];
    });
  store.transaction(() => {
    store.replaceAllEntries(adopted);
    store.writeMeta({
      generation: snapshot.generation,
      kvFlushedGeneration: snapshot.generation,
      // Adopted, not written by this DO: what its bytes hash to is learnt at the next flush.
      kvFlushedBody: null,
      sizeModel: SIZE_MODEL,
      entryCount: adopted.length,
      entryBytes: adopted.reduce((sum, [, e]) => sum + e.size, 0),
    });
  });
  meta.kvFlushedGeneration = snapshot.generation;
  meta.kvFlushedBody = null;
  return {
    meta,
    start: { entries: adopted },
    generation: snapshot.generation,
    source: "kv",
    kvReport: { status: "ok", generation: snapshot.generation, error: null, verified: true },
    kvCheckPending: false,
  };
}

/** The snapshot key's presence and metadata, from one KV `list` (a read: no value is downloaded). */
async function kvMetadata(kv: KVNamespace): Promise<{ present: boolean; metadata?: SnapshotKeyMetadata; error?: string }> {
  try {
    const listed = await kv.list<SnapshotKeyMetadata>({ prefix: ENTRIES_KEY, limit: 10 });
    const key = listed.keys.find((k) => k.name === ENTRIES_KEY);
    return key ? { present: true, ...(key.metadata ? { metadata: key.metadata } : {}) } : { present: false };
  } catch (err) {
    return { present: false, error: `KV list failed: ${(err as Error).message}` };
  }
}

/**
 * After start-up: reads and verifies the KV snapshot that the load did not download. Returns the report to show
 * in `/metadata` and whether the snapshot is damaged (the next flush must replace it).
 */
export async function checkKvSnapshot(kv: KVNamespace, doGeneration: number): Promise<{ report: KvSnapshotReport; damaged: boolean }> {
  const read = await readKvSnapshot(kv);
  if (read.ok) {
    const status = read.snapshot.generation < doGeneration ? "stale" : "ok";
    return { report: { status, generation: read.snapshot.generation, error: null, verified: true }, damaged: false };
  }
  if (read.status === "absent") return { report: { status: "absent", generation: null, error: null, verified: true }, damaged: true };
  if (read.status === "unreadable") return { report: { status: "unreadable", generation: null, error: read.reason, verified: false }, damaged: false };
  return { report: { status: read.status, generation: read.status === "torn" ? read.snapshot.generation : null, error: read.reason, verified: true }, damaged: true };
}

/**
 * Rows written before 0.2 recorded key + value bytes as their size; the bound now counts what an entry costs in
 * the KV snapshot. Recomputed once, in one transaction, then recorded in meta.
 */
function resizeRows(store: EntryStorage, entries: Array<[string, MemoryEntry]>): void {
  const values = store.readValues();
  const sizes: Array<[string, number]> = [];
  for (const [key, entry] of entries) {
    entry.value = values.get(key);
    entry.size = snapshotEntryBytes(key, entry.value ?? "", entry.freshUntil !== undefined);
    sizes.push([key, entry.size]);
  }
  const bytes = sizes.reduce((sum, [, size]) => sum + size, 0);
  store.transaction(() => {
    store.resizeEntries(sizes);
    store.writeMeta({ sizeModel: SIZE_MODEL, entryCount: sizes.length, entryBytes: bytes });
  });
}
