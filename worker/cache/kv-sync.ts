import { ENTRIES_KEY, STATS_KEY, type FlushResult, type KvStatus, type SnapshotKeyMetadata, type SyncMode } from "../../protocol/index.js";
import type { Logger } from "../log.js";
import type { EntryStorage, PersistedMeta } from "./storage.js";

/** KV accepts one write per second per key; stay a little above it so clock jitter never trips a 429. */
export const KV_PER_KEY_INTERVAL_MS = 1050;
const BACKOFF_BASE_MS = 2_000;
const BACKOFF_MAX_MS = 5 * 60_000;

export interface BuiltSnapshot {
  generation: number;
  digest: string;
  writtenAt: number;
  entryCount: number;
  entriesText: string;
  statsText: (kvWritesToday: number) => string;
}

export interface KvSyncOptions {
  mode: SyncMode;
  budget: number;
  flushIntervalMs: number;
  now: () => number;
  /** The DO's current generation: a flush owes nothing more only if it wrote this one. */
  generation: () => number;
  log: Logger;
  storage: EntryStorage;
  meta: PersistedMeta;
}

export const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);
const nextUtcMidnight = (ms: number): number => {
  const d = new Date(ms);
  return Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), d.getUTCDate() + 1);
};

/**
 * Decides when the KV snapshot is written and writes it. Mutations only mark it dirty (coalesced mode); the
 * alarm, `POST /flush` or write-through mode call `flush`. Flushes are serialised, so the two keys are always
 * written as a pair from one consistent snapshot.
 */
export class KvSync {
  /** Swappable so tests can inject a failing or counting namespace. */
  kv: KVNamespace;
  /** How long one KV call may take before it counts as failed. */
  timeoutMs = 15_000;

  readonly mode: SyncMode;
  private readonly budget: number;
  private readonly flushIntervalMs: number;
  private readonly now: () => number;
  private readonly generation: () => number;
  private readonly log: Logger;
  private readonly storage: EntryStorage;

  private day: string;
  private writesToday: number;
  private lastFlushAt: number | null;
  private flushedGeneration: number | null;
  private lastError: string | null;
  private lastWriteAt = 0;
  private pendingSince: number | null = null;
  private failures = 0;
  private nextAttemptAt: number | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  /** A forced flush waiting its turn: callers arriving meanwhile share it rather than queue a write each. */
  private queuedForced: Promise<FlushResult> | null = null;

  constructor(kv: KVNamespace, opts: KvSyncOptions) {
    this.kv = kv;
    this.mode = opts.mode;
    this.budget = opts.budget;
    this.flushIntervalMs = opts.flushIntervalMs;
    this.now = opts.now;
    this.generation = opts.generation;
    this.log = opts.log;
    this.storage = opts.storage;
    this.day = opts.meta.kvDay;
    this.writesToday = opts.meta.kvWritesToday;
    this.lastFlushAt = opts.meta.kvLastFlushAt;
    this.flushedGeneration = opts.meta.kvFlushedGeneration;
    this.lastError = opts.meta.kvLastError;
  }

  /** After a restart: is the persisted state behind the DO's? Then a flush is owed. */
  resume(): void {
    const generation = this.generation();
    if (this.flushedGeneration !== generation && generation > 0) this.pendingSince ??= this.now();
  }

  status(): KvStatus {
    this.rollDay();
    return {
      lastFlushAt: this.lastFlushAt,
      lastError: this.lastError,
      pendingSince: this.pendingSince,
      writesToday: this.writesToday,
      budget: this.budget,
      mode: this.mode,
      flushedGeneration: this.flushedGeneration,
      nextAttemptAt: this.nextAttemptAt,
    };
  }

  get isPending(): boolean {
    return this.pendingSince !== null;
  }

  markDirty(): void {
    this.pendingSince ??= this.now();
  }

  /** When the alarm should next run for KV's sake, or null if nothing is owed. */
  dueAt(): number | null {
    if (this.pendingSince === null) return null;
    const due = Math.max(this.pendingSince + this.flushIntervalMs, this.lastWriteAt + KV_PER_KEY_INTERVAL_MS);
    return this.nextAttemptAt !== null ? Math.max(due, this.nextAttemptAt) : due;
  }

  /**
   * Writes both keys from `build()`. `waitForFloor` waits out the 1 write/s/key floor (used by POST /flush, at
   * most ~1 s); otherwise a flush inside the floor is left to the alarm. Never throws: failures are recorded.
   */
  flush(build: (now: number) => Promise<BuiltSnapshot>, opts: { waitForFloor: boolean; ignoreFloor?: boolean }): Promise<FlushResult> {
    if (!opts.waitForFloor) return this.serialized(() => this.flushOnce(build, opts));
    // Forced flushes (POST /flush, seed with flush) that arrive while one is queued join it: it has not built its
    // snapshot yet, so it covers every mutation they have seen. Thirty concurrent calls cost one write, not 30.
    if (this.queuedForced) return this.queuedForced;
    const run = this.serialized(async () => {
      this.queuedForced = null;
      return (await this.alreadyInKv()) ?? this.flushOnce(build, opts);
    });
    this.queuedForced = run;
    return run;
  }

  /**
   * A forced flush of a generation KV already holds writes nothing. Our own bookkeeping says so first; one KV
   * list (a read, not a write) then confirms both keys are still there with that generation, so a snapshot
   * deleted behind the DO's back (wrangler kv key delete) is still rewritten.
   */
  private async alreadyInKv(): Promise<FlushResult | null> {
    const generation = this.generation();
    if (this.pendingSince !== null || this.flushedGeneration !== generation || this.lastFlushAt === null) return null;
    let listed: KVNamespaceListResult<SnapshotKeyMetadata>;
    try {
      listed = await this.withTimeout(this.kv.list<SnapshotKeyMetadata>({ prefix: "do_cache_" }), "list");
    } catch {
      return null; // cannot tell: write
    }
    const entries = listed.keys.find((k) => k.name === ENTRIES_KEY)?.metadata;
    const hasStats = listed.keys.some((k) => k.name === STATS_KEY);
    if (!hasStats || entries?.generation !== generation || typeof entries.digest !== "string" || typeof entries.entries !== "number") return null;
    return { generation, digest: entries.digest, writtenAt: entries.writtenAt, entries: entries.entries, written: true, upToDate: true };
  }

  /** KV operations run one at a time, in call order, so the two keys are always written as a pair. */
  private serialized<T>(op: () => Promise<T>): Promise<T> {
    const run = this.chain.then(op);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** Deletes both keys now (clear). Deletes count against KV's write limits, so they are budgeted too. */
  deleteKeys(): Promise<{ ok: boolean; error?: string }> {
    return this.serialized(async () => {
      await this.waitForFloor();
      this.rollDay();
      if (this.writesToday + 2 > this.budget) {
        const error = `${this.budgetMessage()}; KV keeps the old snapshot until the first flush after midnight UTC`;
        this.lastError = error;
        this.nextAttemptAt = nextUtcMidnight(this.now());
        // The stale snapshot must still go: the first flush the budget allows overwrites it.
        this.markDirty();
        this.persist();
        this.log("warn", "CACHE_DO_CLEAR", "budget_exhausted", { writesToday: this.writesToday, budget: this.budget });
        return { ok: false, error };
      }
      try {
        await this.withTimeout(this.kv.delete(ENTRIES_KEY), "delete");
        this.writesToday++;
        await this.withTimeout(this.kv.delete(STATS_KEY), "delete");
        this.writesToday++;
        this.lastWriteAt = this.now();
        this.pendingSince = null;
        this.flushedGeneration = null;
        this.lastError = null;
        this.failures = 0;
        this.nextAttemptAt = null;
        this.persist();
        return { ok: true };
      } catch (err) {
        const error = this.recordFailure(err, "delete");
        // The stale snapshot must still go: the next flush overwrites it with the (now empty) state.
        this.markDirty();
        return { ok: false, error };
      }
    });
  }

  private async flushOnce(build: (now: number) => Promise<BuiltSnapshot>, opts: { waitForFloor: boolean; ignoreFloor?: boolean }): Promise<FlushResult> {
    this.rollDay();
    if (this.writesToday + 2 > this.budget) {
      const error = this.budgetMessage();
      this.lastError = error;
      this.nextAttemptAt = nextUtcMidnight(this.now());
      this.persist();
      this.log("warn", "CACHE_DO_KV_FLUSH", "budget_exhausted", { writesToday: this.writesToday, budget: this.budget });
      return this.notWritten(error);
    }
    if (!opts.ignoreFloor) {
      const wait = this.lastWriteAt + KV_PER_KEY_INTERVAL_MS - this.now();
      if (wait > 0 && !opts.waitForFloor) {
        return this.notWritten("deferred: KV allows one write per second per key");
      }
      await this.waitForFloor();
    }
    const snap = await build(this.now());
    const metadata: SnapshotKeyMetadata = { format: 1, generation: snap.generation, writtenAt: snap.writtenAt, digest: snap.digest, entries: snap.entryCount };
    const started = this.now();
    try {
      await this.withTimeout(this.kv.put(ENTRIES_KEY, snap.entriesText, { metadata }), "put");
      this.writesToday++;
      await this.withTimeout(
        this.kv.put(STATS_KEY, snap.statsText(this.writesToday + 1), { metadata: { format: 1, generation: snap.generation, writtenAt: snap.writtenAt } }),
        "put",
      );
      this.writesToday++;
    } catch (err) {
      return this.notWritten(this.recordFailure(err, "put"));
    }
    this.lastWriteAt = this.now();
    const ms = this.lastWriteAt - started;
    this.lastFlushAt = snap.writtenAt;
    this.flushedGeneration = snap.generation;
    this.lastError = null;
    this.failures = 0;
    this.nextAttemptAt = null;
    // Mutations that landed while the puts were in flight keep the snapshot dirty.
    this.pendingSince = this.generation() === snap.generation ? null : this.now();
    this.persist();
    this.log("info", "CACHE_DO_KV_FLUSH", "flushed", {
      generation: snap.generation,
      entries: snap.entryCount,
      bytes: snap.entriesText.length,
      writesToday: this.writesToday,
      ms,
    });
    return { generation: snap.generation, digest: snap.digest, writtenAt: snap.writtenAt, entries: snap.entryCount, written: true };
  }

  private budgetMessage(): string {
    return `daily KV write budget exhausted (${this.writesToday}/${this.budget} writes today, resets at 00:00 UTC)`;
  }

  private notWritten(error: string): FlushResult {
    return { generation: this.generation(), digest: null, writtenAt: 0, entries: 0, written: false, error };
  }

  private recordFailure(err: unknown, op: string): string {
    this.failures++;
    const delay = Math.min(BACKOFF_BASE_MS * 2 ** (this.failures - 1), BACKOFF_MAX_MS);
    this.nextAttemptAt = this.now() + delay;
    this.lastError = `KV ${op} failed: ${err instanceof Error ? err.message : String(err)}`;
    this.pendingSince ??= this.now();
    this.persist();
    this.log("error", "CACHE_DO_KV_FLUSH", "kv_failed", { error: this.lastError, failures: this.failures, retryInMs: delay });
    return this.lastError;
  }

  private async waitForFloor(): Promise<void> {
    const wait = this.lastWriteAt + KV_PER_KEY_INTERVAL_MS - this.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  }

  private async withTimeout<T>(op: Promise<T>, what: string): Promise<T> {
    let timer: number | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} timed out after ${this.timeoutMs} ms`)), this.timeoutMs);
    });
    try {
      return await Promise.race([op, timeout]);
    } finally {
      if (timer !== undefined) clearTimeout(timer);
    }
  }

  private rollDay(): void {
    const today = utcDay(this.now());
    if (today !== this.day) {
      this.day = today;
      this.writesToday = 0;
      if (this.lastError?.startsWith("daily KV write budget")) {
        this.lastError = null;
        this.nextAttemptAt = null;
      }
    }
  }

  private persist(): void {
    this.storage.writeMeta({
      kvDay: this.day,
      kvWritesToday: this.writesToday,
      kvLastFlushAt: this.lastFlushAt,
      kvFlushedGeneration: this.flushedGeneration,
      kvLastError: this.lastError,
    });
  }
}
