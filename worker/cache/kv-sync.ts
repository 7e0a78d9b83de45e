import { ENTRIES_KEY, KV_MAX_VALUE_BYTES, STATS_KEY, readSnapshot, sha256Hex, utf8Length, type FlushResult, type FlushedSnapshot, type KvStatus, type SnapshotKeyMetadata, type SyncMode } from "../../protocol/index.js";
import type { Logger } from "../log.js";
import { STATS_EVERY_FLUSHES, earliestScheduled, nextUtcMidnight, pacingFor, scheduledQuota, steadyIntervalMs, type Pacing } from "./pacing.js";
import type { EntryStorage, PersistedMeta } from "./storage.js";

/** KV accepts one write per second per key; stay a little above it so clock jitter never trips a 429. */
export const KV_PER_KEY_INTERVAL_MS = 1050;
const BACKOFF_BASE_MS = 2_000;
/**
 * What one scheduled flush counts against the pacing line: the entries key, plus a tenth of the stats key that
 * rides along every tenth flush. Charging the average rather than the actual writes keeps the gaps between
 * flushes even: a flush that also writes stats would otherwise wait for two writes' worth of line (~186 s at
 * the defaults instead of ~102 s).
 */
const PACED_FLUSH_COST = 1 + 1 / STATS_EVERY_FLUSHES;
const BACKOFF_MAX_MS = 5 * 60_000;

export interface BuiltSnapshot {
  generation: number;
  digest: string;
  writtenAt: number;
  /** Entries live at writtenAt (rows stale-if-error keeps past their expiry are in the text but not counted). */
  entryCount: number;
  entriesText: string;
  /** Until when every live entry stays live and no kept row leaves (null: nothing in it changes). */
  validUntil: number | null;
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

/** Who asked for a flush: the alarm is paced across the day; an operator may spend the reserve. */
export type FlushKind = "scheduled" | "forced" | "write-through";

export const utcDay = (ms: number): string => new Date(ms).toISOString().slice(0, 10);

/** A KV error that no retry can fix: the value is over KV's limit. */
const isPermanent = (message: string) => /\b413\b|too large|exceeds? (the )?(limit|maximum)|value length/i.test(message);

/**
 * Decides when the KV snapshot is written and writes it. Mutations only mark it owed (coalesced mode); the
 * alarm, `POST /flush` or write-through mode call `flush`. Flushes are serialised, so a snapshot is always
 * written whole from one consistent state.
 *
 * `do_cache_entries` is written with every flush; `do_cache_stats` with every forced flush and otherwise about
 * every tenth scheduled one (STATS_EVERY_FLUSHES): it is a summary, and writing it each time doubled the cost of
 * keeping KV fresh. Each stats document names the generation it describes, never newer than the entries key's,
 * so a reader can tell a summary that is merely older from one that contradicts the entries.
 */
export class KvSync {
  /** Swappable so tests can inject a failing or counting namespace. */
  kv: KVNamespace;
  /** How long one KV call may take before it counts as failed. */
  timeoutMs = 15_000;
  /**
   * "paced" spreads the budget over the day (pacing.ts). "greedy" is 0.1's schedule, both keys every
   * KV_FLUSH_INTERVAL_SECONDS until the budget is gone: kept only as the benchmark's baseline.
   */
  schedule: "paced" | "greedy" = "paced";

  readonly mode: SyncMode;
  readonly pacing: Pacing;
  private readonly flushIntervalMs: number;
  private readonly now: () => number;
  private readonly generation: () => number;
  private readonly log: Logger;
  private readonly storage: EntryStorage;

  private day: string;
  private writesToday: number;
  /** Writes charged against the pacing line today (scheduled flushes at PACED_FLUSH_COST, the rest as spent). */
  private paceSpent: number;
  private lastFlushAt: number | null;
  private flushedGeneration: number | null;
  /** What the last flush wrote, SHA-256 of its bytes included: /metadata names it for verify-kv. */
  private flushedBody: FlushedSnapshot | null;
  private lastError: string | null;
  /** The first mutation KV has not seen: persisted, so lag is measured honestly across DO restarts. */
  private pendingSince: number | null;
  /** Consecutive failures and the retry time: persisted, so the backoff reaches its cap across restarts. */
  private failures: number;
  private nextAttemptAt: number | null;
  /** A failure no retry can fix: nothing is retried until the cache changes. */
  private permanent: boolean;
  private statsWrittenAt: number | null;
  private lastWriteAt = 0;
  private chain: Promise<unknown> = Promise.resolve();
  /** A forced flush waiting its turn: callers arriving meanwhile share it rather than queue a write each. */
  private queuedForced: Promise<FlushResult> | null = null;

  constructor(kv: KVNamespace, opts: KvSyncOptions) {
    this.kv = kv;
    this.mode = opts.mode;
    this.pacing = pacingFor(opts.budget);
    this.flushIntervalMs = opts.flushIntervalMs;
    this.now = opts.now;
    this.generation = opts.generation;
    this.log = opts.log;
    this.storage = opts.storage;
    const m = opts.meta;
    this.day = m.kvDay;
    this.writesToday = m.kvWritesToday;
    this.paceSpent = m.kvPaceSpent ?? m.kvWritesToday;
    this.lastFlushAt = m.kvLastFlushAt;
    this.flushedGeneration = m.kvFlushedGeneration;
    this.flushedBody = m.kvFlushedBody;
    this.lastError = m.kvLastError;
    this.pendingSince = m.kvPendingSince;
    this.failures = m.kvFailures;
    this.nextAttemptAt = m.kvNextAttemptAt;
    this.permanent = m.kvPermanent;
    this.statsWrittenAt = m.kvStatsWrittenAt;
  }

  /** After a restart: is the persisted state behind the DO's? Then a flush is owed, since the persisted time. */
  resume(): void {
    const generation = this.generation();
    if (this.flushedGeneration !== generation && generation > 0) this.markDirty();
  }

  /** What do_cache_entries holds if nobody else wrote it since this DO's last flush, or null when unknown. */
  flushed(): FlushedSnapshot | null {
    return this.flushedBody !== null && this.flushedBody.generation === this.flushedGeneration ? this.flushedBody : null;
  }

  status(): KvStatus {
    this.rollDay();
    const now = this.now();
    const steady = this.steadyIntervalMs();
    const paced = this.isPaced() && earliestScheduled(this.pacing, this.paceSpent, PACED_FLUSH_COST, now) > now;
    return {
      lastFlushAt: this.lastFlushAt,
      lastError: this.lastError,
      pendingSince: this.pendingSince,
      writesToday: this.writesToday,
      budget: this.pacing.budget,
      mode: this.mode,
      flushedGeneration: this.flushedGeneration,
      nextAttemptAt: this.nextAttemptAt,
      writable: this.blockedReason() === null,
      failures: this.failures,
      pacing: {
        intervalMs: paced ? Math.max(steady, this.flushIntervalMs) : this.flushIntervalMs,
        baseIntervalMs: this.flushIntervalMs,
        steadyIntervalMs: steady,
        paced,
        nextFlushAt: this.dueAt(),
        reserve: this.pacing.reserve,
        burst: this.pacing.burst,
        scheduledQuota: Math.floor(scheduledQuota(this.pacing, now)),
        budgetExhaustsAt: this.forecastExhaustion(now),
      },
    };
  }

  get isPending(): boolean {
    return this.pendingSince !== null;
  }

  markDirty(): void {
    if (this.pendingSince === null) {
      this.pendingSince = this.now();
      this.storage.writeMeta({ kvPendingSince: this.pendingSince });
    }
    if (this.permanent) {
      // The snapshot changed, so it may fit now: try again, no sooner than the backoff allows.
      this.permanent = false;
      this.nextAttemptAt = this.now() + this.backoffMs();
      this.persist();
    }
  }

  /** When the alarm should next run for KV's sake, or null if nothing is owed (or nothing can be written). */
  dueAt(): number | null {
    if (this.pendingSince === null || this.permanent) return null;
    this.rollDay();
    const now = this.now();
    let due = Math.max(this.pendingSince + this.flushIntervalMs, this.lastWriteAt + KV_PER_KEY_INTERVAL_MS);
    if (this.nextAttemptAt !== null) due = Math.max(due, this.nextAttemptAt);
    if (this.isPaced()) {
      due = Math.max(due, earliestScheduled(this.pacing, this.paceSpent, PACED_FLUSH_COST, now));
      if (this.writesToday + this.flushCost("scheduled", now) > this.pacing.budget - this.pacing.reserve) due = Math.max(due, nextUtcMidnight(now));
    }
    return due;
  }

  /**
   * Writes the snapshot from `build()`. A forced flush (POST /flush) waits out the 1 write/s/key floor (< 1 s)
   * and may spend the operator reserve; a scheduled one is paced and leaves a flush inside the floor to the
   * alarm. Never throws: failures are recorded.
   */
  flush(build: (now: number) => Promise<BuiltSnapshot>, kind: FlushKind): Promise<FlushResult> {
    if (kind !== "forced") return this.serialized(() => this.flushOnce(build, kind));
    // Forced flushes (POST /flush, seed with flush) that arrive while one is queued join it: it has not built its
    // snapshot yet, so it covers every mutation they have seen. Thirty concurrent calls cost one write, not 30.
    if (this.queuedForced) return this.queuedForced;
    const run = this.serialized(async () => {
      this.queuedForced = null;
      return (await this.alreadyInKv()) ?? this.flushOnce(build, kind);
    });
    this.queuedForced = run;
    return run;
  }

  /** Deletes both keys now (clear). Deletes count against KV's write limits, so they are budgeted too. */
  deleteKeys(): Promise<{ ok: boolean; error?: string }> {
    // The state KV is being emptied for: a write after this (even while the per-key floor is waited out) stays owed.
    const generation = this.generation();
    return this.serialized(async () => {
      await this.waitForFloor();
      this.rollDay();
      if (this.writesToday + 2 > this.pacing.budget) {
        // The stale snapshot must still go: the first flush the budget allows overwrites it.
        this.markDirty();
        const error = this.refuseOverBudget("CACHE_DO_CLEAR", "; KV keeps the old snapshot until the first flush after midnight UTC");
        return { ok: false, error };
      }
      try {
        await this.withTimeout(this.kv.delete(ENTRIES_KEY), "delete");
        this.writesToday++;
        await this.withTimeout(this.kv.delete(STATS_KEY), "delete");
        this.writesToday++;
        this.paceSpent += 2;
        this.lastWriteAt = this.now();
        // A write that landed while the keys were being deleted is still owed to KV.
        if (this.generation() === generation) this.pendingSince = null;
        this.flushedGeneration = null;
        this.flushedBody = null;
        this.statsWrittenAt = null;
        this.clearFailures();
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

  // ---- internals --------------------------------------------------------------------------------------------

  /** KV operations run one at a time, in call order, so a snapshot is always written whole. */
  private serialized<T>(op: () => Promise<T>): Promise<T> {
    const run = this.chain.then(op);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /**
   * A forced flush of a generation KV already holds writes nothing. Our own bookkeeping says so first; one KV
   * list then confirms both keys are still there with that generation, and a read of the entries key that its
   * digest holds, so a snapshot deleted or damaged behind the DO's back is still rewritten.
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
    // Metadata can be copied onto damaged text: an operator's flush reads the value and checks its digest too.
    // (A read, not a write: the budget this saves is KV's daily writes.)
    const read = await readSnapshot((key) => this.withTimeout(this.kv.get(key, "text"), "get"));
    if (!read.ok || read.snapshot.generation !== generation || read.snapshot.digest !== entries.digest) return null;
    return { generation, digest: entries.digest, writtenAt: entries.writtenAt, entries: entries.entries, written: true, upToDate: true };
  }

  /** Whether this flush also rewrites do_cache_stats, and so what it costs. */
  private withStats(kind: FlushKind, now: number): boolean {
    if (kind !== "scheduled" || this.statsWrittenAt === null || this.schedule === "greedy") return true;
    return now - this.statsWrittenAt >= STATS_EVERY_FLUSHES * Math.max(this.flushIntervalMs, this.steadyIntervalMs());
  }

  private isPaced(): boolean {
    return this.mode === "coalesced" && this.schedule === "paced";
  }

  private flushCost(kind: FlushKind, now: number): number {
    return this.withStats(kind, now) ? 2 : 1;
  }

  private steadyIntervalMs(): number {
    return steadyIntervalMs(this.pacing, 1 + 1 / STATS_EVERY_FLUSHES);
  }

  private async flushOnce(build: (now: number) => Promise<BuiltSnapshot>, kind: FlushKind): Promise<FlushResult> {
    this.rollDay();
    const now = this.now();
    const withStats = this.withStats(kind, now);
    const cost = withStats ? 2 : 1;
    if (this.writesToday + cost > this.pacing.budget) return this.notWritten(this.refuseOverBudget("CACHE_DO_KV_FLUSH"));
    if (kind === "scheduled") {
      // The alarm also runs for sweeps and stats: it only retries KV when the failure allows it.
      if (this.permanent) return this.notWritten(this.lastError ?? "permanent KV error");
      if (this.nextAttemptAt !== null && this.nextAttemptAt > now) return this.notWritten(`deferred: retrying at ${new Date(this.nextAttemptAt).toISOString()}`);
    }
    if (kind === "scheduled" && this.isPaced()) {
      const usable = this.pacing.budget - this.pacing.reserve;
      if (this.writesToday + cost > usable) return this.notWritten(`deferred: scheduled flushes have spent the day's budget but the ${this.pacing.reserve}-write operator reserve; next at 00:00 UTC`);
      const at = earliestScheduled(this.pacing, this.paceSpent, PACED_FLUSH_COST, now);
      if (at > now) return this.notWritten(`deferred: paced to ${new Date(at).toISOString()} to keep the daily budget`);
    }
    if (kind === "scheduled") {
      if (this.lastWriteAt + KV_PER_KEY_INTERVAL_MS > now) return this.notWritten("deferred: KV allows one write per second per key");
    } else if (kind === "forced") {
      await this.waitForFloor();
    }
    const snap = await build(this.now());
    const bytes = snap.entriesText.length * 3 <= KV_MAX_VALUE_BYTES ? snap.entriesText.length : utf8Length(snap.entriesText);
    if (bytes > KV_MAX_VALUE_BYTES) {
      return this.notWritten(this.recordFailure(new Error(`snapshot is ${bytes} bytes, over KV's ${KV_MAX_VALUE_BYTES}-byte value limit`), "put", true));
    }
    const metadata: SnapshotKeyMetadata = { format: 1, generation: snap.generation, writtenAt: snap.writtenAt, digest: snap.digest, entries: snap.entryCount };
    const started = this.now();
    try {
      // Hashed here, once per write (~30 ms at 20 MiB), so that verify-kv can prove KV equal without re-parsing.
      const sha256 = await sha256Hex(snap.entriesText);
      await this.withTimeout(this.kv.put(ENTRIES_KEY, snap.entriesText, { metadata }), "put");
      this.writesToday++;
      // From here the entries key holds this generation, whatever happens to the stats write.
      this.flushedGeneration = snap.generation;
      this.flushedBody = { generation: snap.generation, digest: snap.digest, sha256, writtenAt: snap.writtenAt, entries: snap.entryCount, validUntil: snap.validUntil };
      if (withStats) {
        await this.withTimeout(
          this.kv.put(STATS_KEY, snap.statsText(this.writesToday + 1), { metadata: { format: 1, generation: snap.generation, writtenAt: snap.writtenAt } }),
          "put",
        );
        this.writesToday++;
        this.statsWrittenAt = snap.writtenAt;
      }
    } catch (err) {
      return this.notWritten(this.recordFailure(err, "put"));
    }
    this.paceSpent += kind === "scheduled" && this.isPaced() ? PACED_FLUSH_COST : cost;
    this.lastWriteAt = this.now();
    const ms = this.lastWriteAt - started;
    this.lastFlushAt = snap.writtenAt;
    this.lastError = null;
    this.clearFailures();
    // Mutations that landed while the puts were in flight keep the snapshot owed, since they landed.
    if (this.generation() === snap.generation) this.pendingSince = null;
    else this.pendingSince = Math.max(this.pendingSince ?? snap.writtenAt, snap.writtenAt);
    this.persist();
    this.log("info", "CACHE_DO_KV_FLUSH", "flushed", {
      generation: snap.generation,
      entries: snap.entryCount,
      bytes,
      stats: withStats,
      kind,
      writesToday: this.writesToday,
      ms,
    });
    return { generation: snap.generation, digest: snap.digest, writtenAt: snap.writtenAt, entries: snap.entryCount, written: true };
  }

  /** Why KV cannot be written now, or null: what `verify-kv` fails on whatever lag it tolerates. */
  private blockedReason(): string | null {
    if (this.permanent) return this.lastError;
    if (this.writesToday + 1 > this.pacing.budget) return this.budgetMessage();
    if (this.mode === "coalesced" && this.writesToday + 1 > this.pacing.budget - this.pacing.reserve && this.pendingSince !== null) {
      return `scheduled flushes have used the day's budget but the operator reserve (${this.writesToday}/${this.pacing.budget}); KV waits for 00:00 UTC or a POST /flush`;
    }
    return null;
  }

  /** At today's rate of KV writes, when the budget runs out, if before midnight. */
  private forecastExhaustion(now: number): number | null {
    const midnight = nextUtcMidnight(now);
    if (this.isPaced()) return null; // scheduled flushes stop short of the reserve: pacing cannot run the budget out
    const elapsed = now - (midnight - 86_400_000);
    if (this.writesToday === 0 || elapsed <= 0) return null;
    const rate = this.writesToday / elapsed;
    const at = now + Math.ceil((this.pacing.budget - this.writesToday) / rate);
    return at < midnight ? at : null;
  }

  /** Records a write the daily budget refuses: the error to report, and a retry at the next UTC midnight. */
  private refuseOverBudget(tag: "CACHE_DO_KV_FLUSH" | "CACHE_DO_CLEAR", detail = ""): string {
    this.lastError = `${this.budgetMessage()}${detail}`;
    this.nextAttemptAt = nextUtcMidnight(this.now());
    this.persist();
    this.log("warn", tag, "budget_exhausted", { writesToday: this.writesToday, budget: this.pacing.budget });
    return this.lastError;
  }

  private budgetMessage(): string {
    return `daily KV write budget exhausted (${this.writesToday}/${this.pacing.budget} writes today, resets at 00:00 UTC)`;
  }

  private notWritten(error: string): FlushResult {
    return { generation: this.generation(), digest: null, writtenAt: 0, entries: 0, written: false, error };
  }

  private backoffMs(): number {
    return Math.min(BACKOFF_BASE_MS * 2 ** Math.max(0, this.failures - 1), BACKOFF_MAX_MS);
  }

  private clearFailures(): void {
    this.failures = 0;
    this.nextAttemptAt = null;
    this.permanent = false;
  }

  private recordFailure(err: unknown, op: string, permanent = false): string {
    this.failures++;
    const message = err instanceof Error ? err.message : String(err);
    this.permanent = permanent || isPermanent(message);
    const delay = this.backoffMs();
    this.nextAttemptAt = this.permanent ? null : this.now() + delay;
    this.lastError = `KV ${op} failed: ${message}${this.permanent ? " (permanent: not retried until the cache changes)" : ""}`;
    this.pendingSince ??= this.now();
    this.persist();
    this.log("error", "CACHE_DO_KV_FLUSH", "kv_failed", { error: this.lastError, failures: this.failures, permanent: this.permanent, retryInMs: this.permanent ? null : delay });
    return this.lastError;
  }

  private async waitForFloor(): Promise<void> {
    const wait = this.lastWriteAt + KV_PER_KEY_INTERVAL_MS - this.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.min(wait, KV_PER_KEY_INTERVAL_MS)));
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
      this.paceSpent = 0;
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
      kvPaceSpent: this.paceSpent,
      kvLastFlushAt: this.lastFlushAt,
      kvFlushedGeneration: this.flushedGeneration,
      kvFlushedBody: this.flushedBody,
      kvLastError: this.lastError,
      kvPendingSince: this.pendingSince,
      kvFailures: this.failures,
      kvNextAttemptAt: this.nextAttemptAt,
      kvPermanent: this.permanent,
      kvStatsWrittenAt: this.statsWrittenAt,
    });
  }
}
