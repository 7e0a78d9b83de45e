import type { FlushedSnapshot } from "../../protocol/index.js";
import type { MemoryEntry } from "./memory.js";

/** Persisted bookkeeping beside the entries: one small row per field, so updating one never rewrites the rest. */
export interface PersistedMeta {
  generation: number;
  hits: number;
  misses: number;
  evictions: number;
  expirations: number;
  kvDay: string;
  kvWritesToday: number;
  /** Writes charged against the pacing line today (null in meta written before 0.2). */
  kvPaceSpent: number | null;
  kvLastFlushAt: number | null;
  kvFlushedGeneration: number | null;
  /** What the last flush wrote to do_cache_entries, SHA-256 included (null before 0.2, or after a clear). */
  kvFlushedBody: FlushedSnapshot | null;
  kvLastError: string | null;
  kvPendingSince: number | null;
  kvFailures: number;
  kvNextAttemptAt: number | null;
  kvPermanent: boolean;
  kvStatsWrittenAt: number | null;
  /** Rows in `entries` and their summed size, written with every mutation (null before 0.2: counted once). */
  entryCount: number | null;
  entryBytes: number | null;
  /** How `size` was computed: 1 = key + value bytes (0.1), 2 = what the entry costs in the KV snapshot. */
  sizeModel: number;
}

const META_DEFAULTS: PersistedMeta = {
  generation: 0,
  hits: 0,
  misses: 0,
  evictions: 0,
  expirations: 0,
  kvDay: "",
  kvWritesToday: 0,
  kvPaceSpent: null,
  kvLastFlushAt: null,
  kvFlushedGeneration: null,
  kvFlushedBody: null,
  kvLastError: null,
  kvPendingSince: null,
  kvFailures: 0,
  kvNextAttemptAt: null,
  kvPermanent: false,
  kvStatsWrittenAt: null,
  entryCount: null,
  entryBytes: null,
  sizeModel: 1,
};

/** An entry as a restore stages it: a snapshot entry with its value as canonical JSON text. */
export interface StagedEntry {
  value: string;
  expiresAt: number;
  cachedAt: number;
  lastAccessed: number;
  freshUntil?: number;
}

type EntryRow = { key: string; value: string; expires_at: number; cached_at: number; last_accessed: number; size: number; fresh_until: number | null };

/**
 * The DO-storage tier on the SQLite storage API. Every write here is per entry (an upsert or a delete of one row)
 * plus the meta rows that changed; nothing rewrites the whole cache except recovery from a newer KV snapshot.
 * Calls are synchronous, so a sequence of them inside one DO event commits atomically.
 */
export class EntryStorage {
  /** Rows and logical bytes (bound parameters) written since construction: storage cost per mutation. */
  rowsWritten = 0;
  bytesWritten = 0;

  constructor(private readonly storage: DurableObjectStorage) {
    this.migratedFromWithoutRowid = this.ensureEntriesTable();
    this.sql.exec(`CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID`);
    // A restore uploads here first, invisible to the cache, and is swapped in by one transaction (commitStage).
    this.sql.exec(`CREATE TABLE IF NOT EXISTS restore_stage (
      stage TEXT NOT NULL,
      key TEXT NOT NULL,
      value TEXT NOT NULL,
      expires_at INTEGER NOT NULL,
      cached_at INTEGER NOT NULL,
      last_accessed INTEGER NOT NULL,
      fresh_until INTEGER,
      staged_at INTEGER NOT NULL,
      PRIMARY KEY (stage, key)
    )`);
  }

  private get sql(): SqlStorage {
    return this.storage.sql;
  }

  /** Rows moved by an in-place schema upgrade on this start (0.1's WITHOUT ROWID table), or 0. */
  readonly migratedFromWithoutRowid: number;

  /**
   * The entries table is an ordinary rowid table with a unique key: its rows (~1 KiB values) are far over
   * SQLite's guidance for WITHOUT ROWID tables, where point reads were 3× slower and inserts 2.4×. A DO created by
   * 0.1 is upgraded in place, in one transaction: every row is copied, then the old table is dropped.
   */
  private ensureEntriesTable(): number {
    const existing = this.sql.exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'entries'").toArray()[0];
    const create = (name: string) => `CREATE TABLE ${name} (
      id INTEGER PRIMARY KEY,
      key TEXT NOT NULL UNIQUE,
      value TEXT NOT NULL,
      expires_at INTEGER NOT NULL,
      cached_at INTEGER NOT NULL,
      last_accessed INTEGER NOT NULL,
      size INTEGER NOT NULL,
      fresh_until INTEGER,
      retain_until INTEGER
    )`;
    if (!existing) {
      this.sql.exec(create("entries"));
      return 0;
    }
    if (!/WITHOUT\s+ROWID/i.test(existing.sql)) {
      // 0.2's table, from before stale-if-error: one added nullable column, no row rewritten.
      if (!/\bretain_until\b/.test(existing.sql)) this.sql.exec("ALTER TABLE entries ADD COLUMN retain_until INTEGER");
      return 0;
    }
    return this.storage.transactionSync(() => {
      this.sql.exec("DROP TABLE IF EXISTS entries_upgrade");
      this.sql.exec(create("entries_upgrade"));
      const moved = this.sql.exec(
        "INSERT INTO entries_upgrade (key, value, expires_at, cached_at, last_accessed, size, fresh_until) SELECT key, value, expires_at, cached_at, last_accessed, size, fresh_until FROM entries ORDER BY last_accessed, key",
      ).rowsWritten;
      this.sql.exec("DROP TABLE entries");
      this.sql.exec("ALTER TABLE entries_upgrade RENAME TO entries");
      return moved;
    });
  }

  /**
   * Every row without its value, least recently used first: what a cold start needs to rebuild the LRU, the
   * byte count and the expiry schedule. Values are read on first use (readValue) or all at once (readValues).
   */
  loadIndex(): Array<[string, MemoryEntry]> {
    const out: Array<[string, MemoryEntry]> = [];
    const rows = this.sql.exec("SELECT key, expires_at, cached_at, last_accessed, size, fresh_until, retain_until FROM entries ORDER BY last_accessed, key").raw();
    for (const r of rows) {
      const entry: MemoryEntry = { value: undefined, expiresAt: r[1] as number, cachedAt: r[2] as number, lastAccessed: r[3] as number, size: r[4] as number };
      if (r[5] !== null) entry.freshUntil = r[5] as number;
      if (r[6] !== null) entry.retainUntil = r[6] as number;
      out.push([r[0] as string, entry]);
    }
    return out;
  }

  /** One row with its value, by key (a point read on the unique index). */
  readRow(key: string): MemoryEntry | undefined {
    const it = this.sql.exec("SELECT expires_at, cached_at, last_accessed, size, fresh_until, value, retain_until FROM entries WHERE key = ?", key).raw().next();
    if (it.done) return undefined;
    const r = it.value;
    const entry: MemoryEntry = { value: r[5] as string, expiresAt: r[0] as number, cachedAt: r[1] as number, lastAccessed: r[2] as number, size: r[3] as number };
    if (r[4] !== null) entry.freshUntil = r[4] as number;
    if (r[6] !== null) entry.retainUntil = r[6] as number;
    return entry;
  }

  /** Rows and their summed size, counted by SQLite (for a DO whose meta predates the persisted totals). */
  countEntries(): { count: number; bytes: number } {
    const r = this.sql.exec("SELECT COUNT(*), COALESCE(SUM(size), 0) FROM entries").raw().next().value!;
    return { count: r[0] as number, bytes: r[1] as number };
  }

  /** One value, by key (a point read on the unique index). */
  readValue(key: string): string | undefined {
    const row = this.sql.exec("SELECT value FROM entries WHERE key = ?", key).raw().next();
    return row.done ? undefined : (row.value[0] as string);
  }

  /** Every value, in one scan: for a snapshot of a cache whose values were not all read yet. */
  readValues(): Map<string, string> {
    const out = new Map<string, string>();
    for (const r of this.sql.exec("SELECT key, value FROM entries").raw()) out.set(r[0] as string, r[1] as string);
    return out;
  }

  loadMeta(): PersistedMeta {
    const meta: PersistedMeta = { ...META_DEFAULTS };
    for (const row of this.sql.exec<{ name: string; value: string }>("SELECT name, value FROM meta")) {
      if (row.name in meta) (meta as unknown as Record<string, unknown>)[row.name] = JSON.parse(row.value);
    }
    return meta;
  }

  /** Writes a row; the entry's value must be in hand (a value not yet read from storage is never rewritten). */
  putEntry(key: string, e: MemoryEntry): void {
    const value = e.value;
    if (value === undefined) throw new Error(`putEntry(${JSON.stringify(key)}) without its value`);
    const cursor = this.sql.exec(
      "INSERT INTO entries (key, value, expires_at, cached_at, last_accessed, size, fresh_until, retain_until) VALUES (?, ?, ?, ?, ?, ?, ?, ?) " +
        "ON CONFLICT (key) DO UPDATE SET value = excluded.value, expires_at = excluded.expires_at, cached_at = excluded.cached_at, " +
        "last_accessed = excluded.last_accessed, size = excluded.size, fresh_until = excluded.fresh_until, retain_until = excluded.retain_until",
      key, value, e.expiresAt, e.cachedAt, e.lastAccessed, e.size, e.freshUntil ?? null, e.retainUntil ?? null,
    );
    this.rowsWritten += cursor.rowsWritten;
    // UTF-16 length approximates UTF-8 bytes for the ASCII-heavy JSON we store; 4 integers at 8 bytes.
    this.bytesWritten += key.length + value.length + 32;
  }

  /** Rewrites the size column (a change of size model, once per DO). */
  resizeEntries(sizes: Iterable<[string, number]>): void {
    for (const [key, size] of sizes) this.rowsWritten += this.sql.exec("UPDATE entries SET size = ? WHERE key = ?", size, key).rowsWritten;
  }

  /** A soft purge: each row's fresh period ends at `freshUntil` (and its size grows by the field), values untouched. */
  markStale(rows: Iterable<[string, { freshUntil: number; size: number }]>): void {
    for (const [key, e] of rows) this.rowsWritten += this.sql.exec("UPDATE entries SET fresh_until = ?, size = ? WHERE key = ?", e.freshUntil, e.size, key).rowsWritten;
  }

  deleteEntries(keys: Iterable<string>): void {
    for (const key of keys) this.rowsWritten += this.sql.exec("DELETE FROM entries WHERE key = ?", key).rowsWritten;
  }

  /** Records when keys were last read, lazily (from the alarm), so that a hit itself never writes. */
  touchEntries(touched: Iterable<[string, number]>): void {
    for (const [key, at] of touched) {
      this.rowsWritten += this.sql.exec("UPDATE entries SET last_accessed = ? WHERE key = ?", at, key).rowsWritten;
    }
  }

  deleteAllEntries(): number {
    const cursor = this.sql.exec("DELETE FROM entries");
    this.rowsWritten += cursor.rowsWritten;
    return cursor.rowsWritten;
  }

  /** Replaces every entry: used only when a newer KV snapshot wins at load. */
  replaceAllEntries(entries: Iterable<[string, MemoryEntry]>): void {
    this.storage.transactionSync(() => {
      this.deleteAllEntries();
      for (const [key, e] of entries) this.putEntry(key, e);
    });
  }

  // ---- restore staging ----------------------------------------------------------------------------------------

  stageRows(stage: string, rows: Iterable<[string, StagedEntry]>, stagedAt: number): void {
    for (const [key, e] of rows) {
      const cursor = this.sql.exec(
        "INSERT OR REPLACE INTO restore_stage (stage, key, value, expires_at, cached_at, last_accessed, fresh_until, staged_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        stage, key, e.value, e.expiresAt, e.cachedAt, e.lastAccessed, e.freshUntil ?? null, stagedAt,
      );
      this.rowsWritten += cursor.rowsWritten;
    }
  }

  /** Rows and bytes staged so far, and when the stage began (null: no such stage). */
  stageInfo(stage: string): { rows: number; bytes: number; since: number } | null {
    const r = this.sql.exec<{ n: number; bytes: number | null; since: number | null }>(
      "SELECT COUNT(*) AS n, SUM(LENGTH(key) + LENGTH(value)) AS bytes, MIN(staged_at) AS since FROM restore_stage WHERE stage = ?",
      stage,
    ).one();
    return r.n === 0 ? null : { rows: r.n, bytes: r.bytes ?? 0, since: r.since ?? 0 };
  }

  loadStage(stage: string): Array<[string, StagedEntry]> {
    const out: Array<[string, StagedEntry]> = [];
    for (const r of this.sql.exec<{ key: string; value: string; expires_at: number; cached_at: number; last_accessed: number; fresh_until: number | null }>(
      "SELECT key, value, expires_at, cached_at, last_accessed, fresh_until FROM restore_stage WHERE stage = ?",
      stage,
    )) {
      const e: StagedEntry = { value: r.value, expiresAt: r.expires_at, cachedAt: r.cached_at, lastAccessed: r.last_accessed };
      if (r.fresh_until !== null) e.freshUntil = r.fresh_until;
      out.push([r.key, e]);
    }
    return out;
  }

  deleteStage(stage: string): number {
    return this.sql.exec("DELETE FROM restore_stage WHERE stage = ?", stage).rowsWritten;
  }

  /** Discards stages begun before `before`; returns the oldest stage still kept, if any. */
  expireStages(before: number): number | null {
    this.sql.exec("DELETE FROM restore_stage WHERE stage IN (SELECT stage FROM restore_stage GROUP BY stage HAVING MIN(staged_at) < ?)", before);
    return this.sql.exec<{ since: number | null }>("SELECT MIN(staged_at) AS since FROM restore_stage").one().since;
  }

  writeMeta(fields: Partial<PersistedMeta>): void {
    for (const [name, value] of Object.entries(fields)) {
      const text = JSON.stringify(value);
      const cursor = this.sql.exec("INSERT OR REPLACE INTO meta (name, value) VALUES (?, ?)", name, text);
      this.rowsWritten += cursor.rowsWritten;
      this.bytesWritten += name.length + text.length;
    }
  }

  transaction<T>(fn: () => T): T {
    return this.storage.transactionSync(fn);
  }

  get databaseSize(): number {
    return this.sql.databaseSize;
  }
}
