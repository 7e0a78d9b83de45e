import type { CacheCounters } from "./snapshot.js";

/** The admin API's wire shapes (design.md §3), shared so the CLI decodes exactly what the Worker encodes. */
export const API_PREFIX = "/api/v1/cache";

export type ErrorCode =
  | "bad_request"
  | "unauthorized"
  | "not_found"
  | "method_not_allowed"
  | "too_large"
  | "rate_limited"
  | "conflict"
  | "admin_disabled"
  | "do_disabled"
  | "loader_failed"
  | "internal_error";

export interface ApiError {
  code: ErrorCode | string;
  message: string;
  details?: unknown;
}

export type Envelope<T> = { success: true; data: T } | { success: false; error: ApiError };

export type ClearScope = "do" | "kv" | "all";
export type LoadSource = "do" | "kv" | "empty";
export type SyncMode = "coalesced" | "write-through";

export interface KvStatus {
  lastFlushAt: number | null;
  lastError: string | null;
  pendingSince: number | null;
  writesToday: number;
  budget: number;
  mode: SyncMode;
  flushedGeneration: number | null;
  nextAttemptAt: number | null;
  /** False when KV cannot be written now (budget spent, a permanent error): `verify-kv` fails on it. */
  writable: boolean;
  /** Consecutive failed attempts (the backoff grows with them, to 5 min). */
  failures: number;
  pacing: KvPacing;
}

/** How scheduled flushes are spread over the UTC day (worker/cache/pacing.ts). */
export interface KvPacing {
  /** Time between flushes under continuous writes right now: the base interval, or the paced one. */
  intervalMs: number;
  /** KV_FLUSH_INTERVAL_SECONDS. */
  baseIntervalMs: number;
  /** What the budget allows once the burst allowance is spent. */
  steadyIntervalMs: number;
  /** True when the budget, not KV_FLUSH_INTERVAL_SECONDS, decides when the next flush runs. */
  paced: boolean;
  /** When the owed flush is due, or null when nothing is owed. */
  nextFlushAt: number | null;
  /** Writes only an operator may spend (POST /flush, clear). */
  reserve: number;
  burst: number;
  /** Writes scheduled flushes may have spent by now today. */
  scheduledQuota: number;
  /** At today's rate of KV writes, when the budget runs out (null: not before midnight). */
  budgetExhaustsAt: number | null;
}

export interface CacheStats extends CacheCounters {
  generation: number;
  kv: KvStatus;
}

export interface EntryView {
  key: string;
  value: unknown;
  expiresAt: number;
  cachedAt: number;
  lastAccessed: number;
}

export interface KeyListing {
  keys: Array<{ key: string; expiresAt: number; size: number }>;
  cursor: string | null;
}

export interface FlushResult {
  generation: number;
  /** Null when nothing was written. */
  digest: string | null;
  writtenAt: number;
  entries: number;
  /**
   * True when KV holds this generation after the call: written now, or already there (`upToDate`, nothing was
   * written). False when it could not be written (budget spent, KV failing); `error` says why.
   */
  written: boolean;
  /** KV already held this generation, so the flush cost no write. */
  upToDate?: true;
  error?: string;
}

export interface SeedResult {
  applied: number;
  generation: number;
  evicted: number;
  flush?: FlushResult;
}

export interface SeedReject {
  index: number;
  key?: unknown;
  reason: string;
}

export interface PurgeResult {
  prefix: string;
  /** Entries deleted (a hard purge; 0 for a soft one). */
  deleted: number;
  generation: number;
  /** Present for a soft purge (`?mode=soft`): the entries were kept and marked stale, not deleted. */
  mode?: "soft";
  /** A soft purge: entries marked stale (served once more by getOrSet while it refreshes them). */
  marked?: number;
}

export interface RestoreStaged {
  stage: string;
  /** Entries staged so far in this stage. */
  staged: number;
}

export interface RestoreResult {
  /** Entries now in the cache. */
  restored: number;
  /** Entries of the file already expired: not restored. */
  skippedExpired: number;
  /** Entries the cache's bounds left out (least recently used first). */
  evicted: number;
  generation: number;
  /** The cache's digest after the restore (equal to the file's when nothing was skipped or evicted). */
  digest: string;
}

export interface ClearResult {
  scope: ClearScope;
  deletedEntries: number;
  kvKeysDeleted: boolean;
  generation: number;
  kvError?: string;
}

export interface Metadata {
  generation: number;
  digest: string;
  size: number;
  bytes: number;
  limits: { maxEntries: number; maxBytes: number; maxValueBytes: number; maxKeyBytes: number; maxSeedEntries: number; maxValueDepth: number };
  config: {
    /** How long one KV call may take before the flush counts as failed and is retried with backoff. */
    kvTimeoutMs: number;
    defaultTtlSeconds: number;
    flushIntervalSeconds: number;
    dailyWriteBudget: number;
    syncMode: SyncMode;
    featureFlagDoCache: boolean;
  };
  load: { source: LoadSource; at: number; durationMs: number; kvSnapshot: KvSnapshotReport };
  kv: KvStatus;
  /**
   * What this DO last wrote to do_cache_entries, or null (never flushed, cleared, or written before 0.2). When its
   * generation is the DO's and KV's bytes hash to `sha256`, KV holds exactly the DO's state: `verify-kv` then
   * neither parses values nor recomputes the digest.
   */
  flushed: FlushedSnapshot | null;
  /** DO storage: SQLite file size, and rows/logical bytes written since this instance started. */
  storage: { databaseSize: number; rowsWritten: number; bytesWritten: number };
}

/** The do_cache_entries body a flush wrote: what it holds, and the SHA-256 of its exact UTF-8 bytes. */
export interface FlushedSnapshot {
  generation: number;
  digest: string;
  /** `sha256:` + hex, over the bytes of the value as put (not canonicalised again). */
  sha256: string;
  writtenAt: number;
  /**
   * Its entries live at writtenAt. The body may also hold rows already expired then, which stale-if-error keeps
   * (their expiresAt is before writtenAt; every reader skips them): those are not counted.
   */
  entries: number;
  /** Until then its live entries all stay live and its kept rows stay in (null: nothing in it expires). */
  validUntil: number | null;
}

/** What the last load found in KV: the reason a corrupt snapshot was ignored is kept here for operators. */
export interface KvSnapshotReport {
  status: "absent" | "ok" | "corrupt" | "torn" | "unreadable" | "stale";
  generation: number | null;
  error: string | null;
  /**
   * False while the status comes only from the key's metadata: a start-up does not download a snapshot that is
   * not newer than DO storage; it is read and its digest checked shortly after (the alarm), and this turns true.
   */
  verified: boolean;
}
