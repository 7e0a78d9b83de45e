import { DurableObject } from "cloudflare:workers";
import {
  MAX_KEY_BYTES,
  MAX_SEED_ENTRIES,
  MAX_VALUE_BYTES,
  MAX_VALUE_DEPTH,
  type CacheStats,
  type ClearResult,
  type ClearScope,
  type FlushResult,
  type GetOrSetOptions,
  type KeyListing,
  type Metadata,
  type SeedResult,
  type PurgeMode,
  type PurgeResult,
  type ReadTier,
  type RestoreResult,
  type RestoreStaged,
  type StatsSnapshot,
} from "../../protocol/index.js";
import { clock } from "../clock.js";
import { readConfig, type CacheConfig } from "../config.js";
import type { Env } from "../env.js";
import { createLogger, type Logger } from "../log.js";
import { fail, ok, type Result } from "../result.js";
import { KvSync, type BuiltSnapshot } from "./kv-sync.js";
import { checkKvSnapshot, loadState } from "./load.js";
import { nextAlarmAt } from "./alarm-schedule.js";
import { EntryIndex } from "./entry-index.js";
import { entryProblem, newEntry, type EntryInput } from "./entry-input.js";
import { GroupCommit } from "./group-commit.js";
import { keptUntil, type MemoryEntry } from "./memory.js";
import { purgePrefix } from "./prefix-purge.js";
import { STAGE_TTL_MS, commitRestore, stageRestore, type RestoreHost } from "./restore.js";
import type { MutationHost } from "./mutation-host.js";
import { ReadThrough, type ReadThroughResult } from "./read-through.js";
import { servableStale } from "./stale-if-error.js";
import { SnapshotMemo, snapshotText, type LiveEntry, type SnapshotText } from "./snapshot-builder.js";
import { EntryStorage, type StagedEntry } from "./storage.js";

/** One entry to write: the value as canonical JSON text (the Worker canonicalises it once, at the edge). */
export type { EntryInput } from "./entry-input.js";

/** An entry as read: the value stays canonical JSON text so HTTP can splice it without a parse. */
export interface StoredEntryView {
  key: string;
  /** Provenance (CacheService reads): the tier that held the value, the DO's generation, now − cachedAt. */
  tier?: ReadTier;
  generation?: number;
  ageMs?: number;
  valueJson: string;
  expiresAt: number;
  cachedAt: number;
  lastAccessed: number;
  /** True past a stale-while-revalidate entry's fresh period (still before its hard expiry). */
  stale?: boolean;
}

interface Counters {
  hits: number;
  misses: number;
  evictions: number;
  expirations: number;
}


/** How soon after start-up the KV snapshot the load did not download is checked: off the first request's path. */
const KV_CHECK_DELAY_MS = 2_000;

/** Past a stale-while-revalidate entry's fresh period (callers check the hard expiry separately). */
const isStale = (entry: MemoryEntry, now: number) => entry.freshUntil !== undefined && entry.freshUntil <= now;

/** What a PUT answers. */
export interface PutResult {
  key: string;
  generation: number;
  expiresAt: number;
  evicted: number;
}

/**
 * The cache: memory (LRU Map) in front of SQLite rows in DO storage, with a coalesced KV snapshot behind both.
 * Public methods are its RPC surface; the admin Worker and application Workers call them on a stub.
 */
export class CacheDurableObject extends DurableObject<Env> {
  /** Every TTL and budget decision reads worker/clock.ts, which tests move to cross midnight or expire entries. */
  readonly now = (): number => clock.now();

  readonly config: CacheConfig;
  readonly store: EntryStorage;
  sync!: KvSync;
  private readonly log: Logger;
  /** Memory in front of SQLite: every row after the first whole-cache operation, the rows used so far before. */
  #index!: EntryIndex;
  /**
   * Reading or changing the cache goes through here, so PUTs still queued for group commit are applied first: a
   * call that arrives after a PUT always sees it (worker/cache/group-commit.ts).
   */
  private get index(): EntryIndex {
    this.puts.drain();
    return this.#index;
  }
  private set index(index: EntryIndex) {
    this.#index = index;
  }
  /** PUTs that arrive together share one storage commit (coalesced mode; write-through writes each at once). */
  private readonly puts = new GroupCommit<{ input: EntryInput; now: number }, Result<PutResult>>({
    apply: (items) => {
      const written: Array<{ evicted: number; expiresAt: number }> = [];
      const last = this.mutate(() => {
        for (const { input, now } of items) written.push(this.write(input, now));
      }, items.length);
      const first = last - items.length;
      return written.map((w, i) => ok({ key: items[i]!.input.key, generation: first + i + 1, expiresAt: w.expiresAt, evicted: w.evicted }));
    },
    // Started by drain() right after the batch commits: afterMutation marks KV's snapshot owed before its first
    // await, so no flush can come in between and take KV for current.
    afterApply: () => this.afterMutation(),
    schedule: (drain) => setTimeout(drain, 0),
  });
  /** Snapshot bodies, built once per generation (tests read `builds`). */
  readonly snapshots = new SnapshotMemo();
  #generation = 0;
  /** Like `index`: the generation anyone reads includes the PUTs queued before the caller asked. */
  private get generation(): number {
    this.puts.drain();
    return this.#generation;
  }
  private set generation(generation: number) {
    this.#generation = generation;
  }
  private counters: Counters = { hits: 0, misses: 0, evictions: 0, expirations: 0 };
  private statsDirty = false;
  /** Keys read since the last persist, with when: LRU order survives a restart without a write per hit. */
  private readonly touched = new Map<string, number>();
  private earliestExpiry = Number.POSITIVE_INFINITY;
  private scheduledAlarm: number | null = null;
  /** When the oldest restore stage began: the alarm discards stages an hour old. */
  private oldestStage: number | null = null;
  /** The KV snapshot was not downloaded at start-up and still has to be checked for damage (by the alarm). */
  private kvCheckPending = false;
  /** getOrSet, refresh and getMany (worker/cache/read-through.ts): single flight and load timeouts live there. */
  readonly readThrough = new ReadThrough({
    getEntry: (key) => this.getEntry(key),
    freshValue: (key) => {
      const now = this.now();
      const entry = this.index.peek(key);
      return entry && entry.expiresAt > now && !isStale(entry, now) ? this.valueFor(key, entry) : undefined;
    },
    putEntry: (input) => this.putEntry(input),
    staleValue: (key, withinMs) => {
      const entry = this.index.peek(key);
      if (!servableStale(entry, this.now(), withinMs)) return undefined;
      const valueJson = this.valueFor(key, entry!);
      return valueJson === undefined ? undefined : { valueJson, cachedAt: entry!.cachedAt };
    },
    now: () => this.now(),
    log: (...line) => this.log(...line),
  });
  private loadInfo: Metadata["load"] = {
    source: "empty",
    at: 0,
    durationMs: 0,
    kvSnapshot: { status: "absent", generation: null, error: null, verified: false },
  };

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const { config, problems } = readConfig(env);
    this.config = config;
    this.log = createLogger(config.logLevel);
    this.store = new EntryStorage(ctx.storage);
    for (const problem of problems) this.log("warn", "CACHE_DO_INIT", "config_problem", { problem });
    void ctx.blockConcurrencyWhile(() => this.load());
  }

  // ---- load -------------------------------------------------------------------------------------------------

  private async load(): Promise<void> {
    const started = Date.now();
    const loaded = await loadState(this.store, this.env.CACHE_DO_KV, this.now());
    const { meta, kvReport } = loaded;
    this.generation = loaded.generation;
    this.counters = { hits: meta.hits, misses: meta.misses, evictions: meta.evictions, expirations: meta.expirations };
    this.index = new EntryIndex(this.store, this.config.maxEntries, this.config.maxBytes, loaded.start);
    // Until the index is complete the next expiry is not known here: the alarm the last instance set covers it.
    if (this.index.isComplete) for (const [, entry] of this.index.entries()) this.earliestExpiry = Math.min(this.earliestExpiry, keptUntil(entry));

    this.sync = new KvSync(this.env.CACHE_DO_KV, {
      mode: this.config.syncMode,
      budget: this.config.dailyWriteBudget,
      flushIntervalMs: this.config.flushIntervalSeconds * 1000,
      now: () => this.now(),
      generation: () => this.generation,
      log: this.log,
      storage: this.store,
      meta,
    });
    this.sync.resume();
    // A damaged or missing snapshot is replaced by the next flush; it is never read back into the cache.
    const damaged = kvReport.status === "corrupt" || kvReport.status === "torn" || kvReport.status === "absent";
    if (damaged && this.generation > 0) this.sync.markDirty();
    this.kvCheckPending = loaded.kvCheckPending;

    this.loadInfo = { source: loaded.source, at: Date.now(), durationMs: Date.now() - started, kvSnapshot: kvReport };
    this.oldestStage = this.store.expireStages(this.now() - STAGE_TTL_MS);
    this.scheduledAlarm = await this.ctx.storage.getAlarm();
    await this.ensureAlarm();
    const level = kvReport.status === "corrupt" || kvReport.status === "torn" || kvReport.status === "unreadable" ? "warn" : "info";
    this.log(level, "CACHE_DO_INIT", "loaded", {
      source: loaded.source,
      generation: this.generation,
      entries: this.index.size,
      bytes: this.index.bytes,
      ms: this.loadInfo.durationMs,
      kv: kvReport,
      ...(this.store.migratedFromWithoutRowid > 0 ? { schemaUpgradedRows: this.store.migratedFromWithoutRowid } : {}),
    });
  }

  /** The snapshot the load did not download, read and verified after start-up (from the alarm). */
  private async verifyKvAfterStart(): Promise<void> {
    this.kvCheckPending = false;
    const { report, damaged } = await checkKvSnapshot(this.env.CACHE_DO_KV, this.generation);
    this.loadInfo = { ...this.loadInfo, kvSnapshot: report };
    if (damaged && this.generation > 0) this.sync.markDirty();
    if (damaged || report.status === "unreadable") this.log("warn", "CACHE_DO_INIT", "kv_snapshot_checked", { kv: report });
  }

  /** A value not read since the cold start is read now, from SQLite (a point read). */
  private valueFor(key: string, entry: MemoryEntry): string | undefined {
    if (entry.value === undefined) entry.value = this.store.readValue(key);
    return entry.value;
  }

  // ---- reads ------------------------------------------------------------------------------------------------

  async getEntry(key: string): Promise<Result<StoredEntryView>> {
    const view = await this.read(key);
    return view ? ok(view) : fail(404, "not_found", `no entry for key ${JSON.stringify(key)}`);
  }

  /**
   * The admin API's `GET /entries/:key` answer (its `data`, design.md §3's shape) as JSON text, or null when there
   * is no live entry: the value is spliced in without a parse, and one string crosses RPC for less than an object.
   */
  async getEntryJson(key: string): Promise<string | null> {
    const v = await this.read(key);
    if (!v) return null;
    return `{"key":${JSON.stringify(v.key)},"expiresAt":${v.expiresAt},"cachedAt":${v.cachedAt},"lastAccessed":${v.lastAccessed}${v.stale ? ',"stale":true' : ""},"value":${v.valueJson}}`;
  }

  private async read(key: string): Promise<StoredEntryView | null> {
    const now = this.now();
    // Provenance: whether memory already held the value, asked before peek/valueFor may read it from SQLite.
    const tier = this.index.holdsValue(key) ? "memory" : "storage";
    const entry = this.index.peek(key);
    if (!entry || entry.expiresAt <= now) {
      this.counters.misses++;
      this.statsDirty = true;
      this.log("debug", "DUAL_CACHE_DO", "miss", { key, expired: entry !== undefined });
      // An expired row that stale-if-error keeps stays (for getOrSet alone); the sweep removes it later.
      if (entry && keptUntil(entry) <= now) {
        this.mutate(() => this.expire([key]));
        await this.afterMutation();
      } else await this.ensureAlarm();
      return null;
    }
    const valueJson = this.valueFor(key, entry);
    if (valueJson === undefined) {
      // In memory's index but not in SQLite: never expected; treat as a miss rather than serve nothing.
      this.index.delete(key);
      return null;
    }
    this.index.touch(key, now);
    this.touched.set(key, now);
    this.counters.hits++;
    this.statsDirty = true;
    const stale = isStale(entry, now);
    this.log("debug", "DUAL_CACHE_DO", stale ? "stale_hit" : "hit", { key });
    const view: StoredEntryView = { key, valueJson, expiresAt: entry.expiresAt, cachedAt: entry.cachedAt, lastAccessed: entry.lastAccessed, tier, generation: this.generation, ageMs: now - entry.cachedAt };
    if (stale) view.stale = true;
    return view;
  }

  /** Several keys in one call; absent or expired keys map to null. A Map, so that any key (even "__proto__") works. */
  getMany(keys: string[]): Promise<Map<string, StoredEntryView | null>> {
    return this.readThrough.getMany(keys);
  }

  /** Read-through with single flight and a load timeout, for application code: see ReadThrough.getOrSet. */
  getOrSet(key: string, loader: () => unknown, opts?: GetOrSetOptions): Promise<ReadThroughResult> {
    return this.readThrough.getOrSet(key, loader, opts);
  }

  /** The background half of stale-while-revalidate: see ReadThrough.refresh. */
  refresh(key: string, loader: () => unknown, opts?: GetOrSetOptions): Promise<ReadThroughResult> {
    return this.readThrough.refresh(key, loader, opts);
  }

  /** Listing is served from memory (which holds the whole working set), sorted by key, paged by the last key. */
  listKeys(opts: { prefix?: string; cursor?: string | null; limit?: number }): KeyListing {
    const now = this.now();
    const prefix = opts.prefix ?? "";
    const limit = Math.max(1, Math.min(opts.limit ?? 1000, 1000));
    const after = opts.cursor ?? null;
    const matching: Array<{ key: string; expiresAt: number; size: number }> = [];
    for (const [key, e] of this.index.entries()) {
      if (e.expiresAt <= now || !key.startsWith(prefix)) continue;
      if (after !== null && !(key > after)) continue;
      matching.push({ key, expiresAt: e.expiresAt, size: e.size });
    }
    matching.sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0));
    const page = matching.slice(0, limit);
    return { keys: page, cursor: matching.length > limit ? page[page.length - 1]!.key : null };
  }

  stats(): CacheStats {
    const now = this.now();
    let size = 0;
    let bytes = 0;
    let oldest: number | null = null;
    let newest: number | null = null;
    for (const [, e] of this.index.entries()) {
      if (e.expiresAt <= now) continue;
      size++;
      bytes += e.size;
      if (oldest === null || e.cachedAt < oldest) oldest = e.cachedAt;
      if (newest === null || e.cachedAt > newest) newest = e.cachedAt;
    }
    const { hits, misses, evictions, expirations } = this.counters;
    const lookups = hits + misses;
    return {
      size,
      bytes,
      hits,
      misses,
      evictions,
      expirations,
      hitRate: lookups === 0 ? 0 : Math.round((hits / lookups) * 1000) / 1000,
      oldestEntry: oldest,
      newestEntry: newest,
      generation: this.generation,
      kv: this.sync.status(),
    };
  }

  async metadata(): Promise<Metadata> {
    // The digest of a generation this DO flushed is on record while none of its entries has expired: naming it
    // reads no values (a cold DO would read them all to build the body again).
    const flushed = this.sync.flushed();
    const now = this.now();
    const onRecord = flushed !== null && flushed.generation === this.generation && (flushed.validUntil === null || now < flushed.validUntil);
    const digest = onRecord ? flushed.digest : (await this.buildSnapshot(now)).digest;
    const stats = this.stats();
    return {
      generation: this.generation,
      digest,
      size: stats.size,
      bytes: stats.bytes,
      limits: {
        maxEntries: this.config.maxEntries,
        maxBytes: this.config.maxBytes,
        maxValueBytes: MAX_VALUE_BYTES,
        maxKeyBytes: MAX_KEY_BYTES,
        maxSeedEntries: MAX_SEED_ENTRIES,
        maxValueDepth: MAX_VALUE_DEPTH,
      },
      config: {
        kvTimeoutMs: this.sync.timeoutMs,
        defaultTtlSeconds: this.config.defaultTtlSeconds,
        flushIntervalSeconds: this.config.flushIntervalSeconds,
        dailyWriteBudget: this.config.dailyWriteBudget,
        syncMode: this.config.syncMode,
        featureFlagDoCache: this.config.featureFlagDoCache,
      },
      load: this.loadInfo,
      kv: stats.kv,
      flushed,
      storage: { databaseSize: this.store.databaseSize, rowsWritten: this.store.rowsWritten, bytesWritten: this.store.bytesWritten },
    };
  }

  /** The DO's live state in exactly the `do_cache_entries` format: what `verify-kv` compares KV against. */
  async snapshot(): Promise<{ text: string; generation: number; digest: string }> {
    const snap = await this.buildSnapshot(this.now());
    return { text: snap.text, generation: snap.generation, digest: snap.digest };
  }

  // ---- writes -----------------------------------------------------------------------------------------------

  async putEntry(input: EntryInput): Promise<Result<PutResult>> {
    const problem = entryProblem(input, this.config.maxBytes);
    if (problem) return problem;
    const now = this.now();
    if (this.config.syncMode !== "write-through") {
      // What getOrSet remembers about the key (a cached "not found", a loader backoff) goes now, as it did when a
      // PUT was written on arrival: a getOrSet arriving after this PUT must not answer from it.
      this.readThrough.forget(input.key);
      return this.puts.submit({ input, now });
    }
    // Write-through is the original system's behaviour, kept as the benchmark's baseline: one write, one flush.
    let evicted = 0;
    let expiresAt = 0;
    const generation = this.mutate(() => {
      const written = this.write(input, now);
      evicted = written.evicted;
      expiresAt = written.expiresAt;
    });
    await this.afterMutation();
    return ok({ key: input.key, generation, expiresAt, evicted });
  }

  async deleteEntry(key: string): Promise<Result<{ key: string; generation: number }>> {
    this.readThrough.forget(key);
    const entry = this.index.peek(key);
    if (!entry || entry.expiresAt <= this.now()) {
      if (entry) {
        this.mutate(() => this.expire([key]));
        await this.afterMutation();
      }
      return fail(404, "not_found", `no entry for key ${JSON.stringify(key)}`);
    }
    const generation = this.mutate(() => {
      this.index.delete(key);
      this.touched.delete(key);
      this.store.deleteEntries([key]);
    });
    await this.afterMutation();
    return ok({ key, generation });
  }

  /**
   * All or nothing: every entry is checked first, and one invalid entry rejects the call with the full list of
   * problems, so a caller never has to work out which half of a batch landed. The CLI pre-validates with the
   * same rules and sends only the valid entries.
   */
  async seed(entries: EntryInput[], opts: { flush?: boolean } = {}): Promise<Result<SeedResult>> {
    if (entries.length > MAX_SEED_ENTRIES) return fail(413, "too_large", `at most ${MAX_SEED_ENTRIES} entries per seed call (got ${entries.length})`);
    const rejects: Array<{ index: number; key: unknown; reason: string }> = [];
    entries.forEach((input, index) => {
      const problem = entryProblem(input, this.config.maxBytes);
      if (problem && !problem.ok) rejects.push({ index, key: input?.key, reason: problem.message });
    });
    if (rejects.length > 0) {
      return fail(400, "bad_request", `${rejects.length} of ${entries.length} entries are invalid; nothing was applied`, { rejects });
    }
    const now = this.now();
    let evicted = 0;
    const generation = this.mutate(() => {
      for (const input of entries) evicted += this.write(input, now).evicted;
    });
    await this.afterMutation();
    const result: SeedResult = { applied: entries.length, generation, evicted };
    if (opts.flush) result.flush = await this.flush();
    return ok(result);
  }

  /** Writes both KV keys now, waiting out the per-key floor (< 1 s). */
  async flush(): Promise<FlushResult> {
    this.persistLazyState();
    const result = await this.sync.flush((now) => this.buildForKv(now), "forced");
    await this.ensureAlarm();
    return result;
  }

  async clear(scope: ClearScope = "all"): Promise<ClearResult> {
    let deletedEntries = 0;
    if (scope === "do" || scope === "all") {
      deletedEntries = this.index.size;
      this.mutate(() => {
        this.store.deleteAllEntries();
        this.index.clear();
        this.touched.clear();
        this.earliestExpiry = Number.POSITIVE_INFINITY;
      });
      this.readThrough.forgetAll();
    }
    const result: ClearResult = { scope, deletedEntries, kvKeysDeleted: false, generation: this.generation };
    if (scope === "kv" || scope === "all") {
      const deleted = await this.sync.deleteKeys();
      result.kvKeysDeleted = deleted.ok;
      if (deleted.error) result.kvError = deleted.error;
    } else {
      // DO emptied but KV kept: the next flush brings KV in line.
      this.sync.markDirty();
    }
    await this.ensureAlarm();
    this.log("info", "CACHE_DO_CLEAR", "cleared", { ...result });
    return result;
  }

  /**
   * Every entry whose key starts with `prefix`: deleted (hard), or marked stale so getOrSet serves it once more
   * while refreshing it (soft). Memory, SQLite, and KV with the next flush: see worker/cache/prefix-purge.ts.
   */
  purgePrefix(prefix: string, mode: PurgeMode = "hard"): Promise<Result<PurgeResult>> {
    return purgePrefix(
      // Assigned onto the mutation host, not spread from it: a spread would copy `index` once instead of its getter.
      Object.assign(this.mutationHost(), {
        dropped: (keys: string[], evicted: boolean) => {
          for (const key of keys) this.touched.delete(key);
          if (evicted) {
            this.counters.evictions += keys.length;
            this.statsDirty = true;
          }
        },
        forgetPrefix: (p: string) => this.readThrough.forgetPrefix(p),
      }),
      prefix,
      mode,
      this.now(),
    );
  }

  // ---- restore: stage, then swap in one transaction -----------------------------------------------------------

  /** Adds entries to a restore stage; the cache does not see them until commitRestore (worker/cache/restore.ts). */
  stageRestore(stage: string, entries: Array<[string, StagedEntry]>): Promise<Result<RestoreStaged>> {
    return stageRestore(this.restoreHost(), stage, entries);
  }

  /** Replaces the whole cache with a stage that hashes to `digest`, in one transaction (worker/cache/restore.ts). */
  commitRestore(stage: string, expect: { digest: string; count: number }): Promise<Result<RestoreResult>> {
    return commitRestore(this.restoreHost(), stage, expect);
  }

  /** Discards a stage (the CLI does on Ctrl-C or failure; the alarm does after an hour). */
  abortRestore(stage: string): { stage: string; discarded: number } {
    return { stage, discarded: this.store.deleteStage(stage) };
  }

  /** What prefix-purge.ts and restore.ts share: memory, SQLite, and the one way of changing them. */
  private mutationHost(): MutationHost {
    const cache = this;
    return {
      // A getter, not the object of the moment: a failed PUT batch while the operation waits replaces the index.
      get index() {
        return cache.index;
      },
      store: this.store,
      mutate: (change) => this.mutate(change),
      afterMutation: () => this.afterMutation(),
      generation: () => this.generation,
      log: this.log,
    };
  }

  private restoreHost(): RestoreHost {
    // Assigned onto the mutation host, not spread from it: a spread would copy `index` once instead of its getter.
    return Object.assign(this.mutationHost(), {
      maxBytes: this.config.maxBytes,
      now: () => this.now(),
      ensureAlarm: () => this.ensureAlarm(),
      stageOpened: (since) => {
        this.oldestStage = Math.min(this.oldestStage ?? Number.POSITIVE_INFINITY, since);
      },
      forgetContents: () => {
        this.readThrough.forgetAll();
        this.touched.clear();
        this.earliestExpiry = Number.POSITIVE_INFINITY;
      },
      scheduleExpiry: (expiresAt) => {
        this.earliestExpiry = Math.min(this.earliestExpiry, expiresAt);
      },
      digest: async () => (await this.buildSnapshot(this.now())).digest,
    } satisfies Omit<RestoreHost, keyof MutationHost>);
  }

  // ---- alarm ------------------------------------------------------------------------------------------------

  /** The one alarm: TTL sweep, lazy persistence of stats and LRU order, and the owed KV flush (or its retry). */
  override async alarm(): Promise<void> {
    this.scheduledAlarm = null;
    const now = this.now();
    try {
      this.sweep(now);
      this.persistLazyState();
      this.oldestStage = this.store.expireStages(now - STAGE_TTL_MS);
      if (this.kvCheckPending) await this.verifyKvAfterStart();
      if (this.sync.isPending) await this.sync.flush((t) => this.buildForKv(t), "scheduled");
    } catch (err) {
      // Never let the runtime's alarm retry loop take over: our own schedule below already retries.
      this.log("error", "CACHE_DO_PERSIST", "alarm_failed", { error: (err as Error).message });
    }
    await this.ensureAlarm();
  }

  // ---- internals --------------------------------------------------------------------------------------------

  /** Writes one entry to memory and storage and applies the evictions it causes. Call inside `mutate`. */
  private write(input: EntryInput, now: number): { evicted: number; expiresAt: number } {
    const entry = newEntry(input, now, this.config.defaultTtlSeconds, clock.random);
    this.readThrough.forget(input.key);
    const evicted = this.index.set(input.key, entry);
    this.store.putEntry(input.key, entry);
    this.touched.delete(input.key);
    if (evicted.length > 0) {
      this.store.deleteEntries(evicted);
      for (const key of evicted) this.touched.delete(key);
      this.counters.evictions += evicted.length;
      this.statsDirty = true;
    }
    this.earliestExpiry = Math.min(this.earliestExpiry, keptUntil(entry));
    return { evicted: evicted.length, expiresAt: entry.expiresAt };
  }

  private expire(keys: string[]): void {
    for (const key of keys) {
      this.index.delete(key);
      this.touched.delete(key);
    }
    this.store.deleteEntries(keys);
    this.counters.expirations += keys.length;
    this.statsDirty = true;
  }

  /**
   * Applies a change to storage and memory as one step with a new generation (`steps` new generations when it
   * holds that many writes: a group commit). The storage writes run in one SQLite transaction; if it throws,
   * memory is rebuilt from storage so the two tiers never disagree. Returns the generation it committed.
   */
  private mutate(change: () => void, steps = 1): number {
    // PUTs queued before this change are applied first, in their own transaction: inside this one, a failure of
    // the change would roll back PUTs whose callers had already been told they were written.
    this.puts.drain();
    try {
      this.store.transaction(() => {
        change();
        this.generation += steps;
        // The row count and byte total travel with the generation, so the next cold start reads no rows.
        this.store.writeMeta({ generation: this.generation, entryCount: this.index.size, entryBytes: this.index.bytes });
      });
      // What this change committed: a caller that reports it after awaiting would otherwise report a later one's.
      return this.#generation;
    } catch (err) {
      this.log("error", "CACHE_DO_PERSIST", "mutation_failed", { error: (err as Error).message });
      this.rebuildMemoryFromStorage();
      throw err;
    }
  }

  private rebuildMemoryFromStorage(): void {
    this.snapshots.clear();
    this.generation = this.store.loadMeta().generation;
    this.index = new EntryIndex(this.store, this.config.maxEntries, this.config.maxBytes, this.store.countEntries());
    this.earliestExpiry = Number.POSITIVE_INFINITY; // unknown until the index is complete; the stored alarm stands
  }

  /** Coalesced mode marks the snapshot owed; write-through writes it now, as the original system did. */
  private async afterMutation(): Promise<void> {
    this.sync.markDirty();
    if (this.config.syncMode === "write-through") {
      await this.sync.flush((now) => this.buildForKv(now), "write-through");
    }
    await this.ensureAlarm();
  }

  private sweep(now: number): void {
    // An incomplete index does not know the next expiry: the sweep completes it (off any request's path).
    if (this.index.isComplete && this.earliestExpiry > now) return;
    const expired: string[] = [];
    let earliest = Number.POSITIVE_INFINITY;
    for (const [key, e] of this.index.entries()) {
      // A row stale-if-error keeps past its expiry goes when that ends (KV keeps it until then too: readers skip it).
      if (keptUntil(e) <= now) expired.push(key);
      else earliest = Math.min(earliest, keptUntil(e));
    }
    this.earliestExpiry = earliest;
    if (expired.length === 0) return;
    this.mutate(() => this.expire(expired));
    this.sync.markDirty();
    this.log("info", "CACHE_DO_PERSIST", "swept", { expired: expired.length, generation: this.generation });
  }

  /** Stats counters and LRU read times are persisted here, with flushes and alarms, never on the read path. */
  private persistLazyState(): void {
    if (!this.statsDirty && this.touched.size === 0) return;
    this.store.transaction(() => {
      if (this.statsDirty) this.store.writeMeta({ ...this.counters });
      if (this.touched.size > 0) this.store.touchEntries(this.touched);
    });
    this.statsDirty = false;
    this.touched.clear();
  }

  /**
   * One alarm serves every purpose: the earliest of the owed KV flush, the next TTL expiry and lazy stats
   * persistence. Sweeps and stats saves are spaced at least a flush interval apart so that they cannot turn
   * into a KV write per expiring entry.
   */
  private async ensureAlarm(): Promise<void> {
    const now = this.now();
    const wanted = nextAlarmAt({
      now,
      flushIntervalMs: this.config.flushIntervalSeconds * 1000,
      kvDueAt: this.sync.dueAt(),
      earliestExpiry: this.earliestExpiry,
      lazyStateDirty: this.statsDirty || this.touched.size > 0,
      stageExpiresAt: this.oldestStage === null ? null : this.oldestStage + STAGE_TTL_MS,
      kvCheckAt: this.kvCheckPending ? now + KV_CHECK_DELAY_MS : null,
    });
    if (wanted === null) return;
    if (this.scheduledAlarm !== null && this.scheduledAlarm <= wanted) return;
    this.scheduledAlarm = wanted;
    await this.ctx.storage.setAlarm(wanted);
  }

  /**
   * The entries the snapshot holds, with their values (values not read since the cold start are read in one
   * scan): the live ones, and the expired ones stale-if-error still keeps (keptUntil after now). A kept row goes
   * to KV with its past expiresAt, so every reader skips it as expired (get, listings, verify-kv, load), except
   * stale-if-error's KV path (client, CacheService), which serves it within the caller's window when the loader
   * fails: without it, the first flush after the expiry would drop the KV copy inside that window.
   */
  private heldEntries(now: number): Array<[string, LiveEntry]> {
    const held: Array<[string, MemoryEntry]> = [];
    let unread = false;
    for (const [key, e] of this.index.entries()) {
      if (keptUntil(e) <= now) continue;
      held.push([key, e]);
      if (e.value === undefined) unread = true;
    }
    if (unread) {
      const values = this.store.readValues();
      for (const [key, e] of held) e.value ??= values.get(key);
    }
    return held.filter((pair): pair is [string, LiveEntry] => pair[1].value !== undefined);
  }

  /** The held state as `do_cache_entries` text, from a body built once per generation (SnapshotMemo). */
  private async buildSnapshot(now: number): Promise<SnapshotText & { generation: number }> {
    const generation = this.generation;
    const body = await this.snapshots.get(generation, now, () => this.heldEntries(now));
    return { ...snapshotText(body, generation, now), generation };
  }

  private async buildForKv(now: number): Promise<BuiltSnapshot> {
    const { kv: _kv, generation: _generation, ...counters } = this.stats();
    const snap = await this.buildSnapshot(now);
    return {
      generation: snap.generation,
      digest: snap.digest,
      writtenAt: now,
      // Live entries, as stats' size counts them (verify-kv compares the two); kept expired rows are not counted.
      entryCount: snap.live,
      entriesText: snap.text,
      validUntil: snap.validUntil,
      statsText: (kvWritesToday) => {
        const doc: StatsSnapshot = { format: 1, generation: snap.generation, writtenAt: now, ...counters, kvWritesToday };
        return JSON.stringify(doc);
      },
    };
  }
}
