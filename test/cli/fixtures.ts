import { digestEntries, type CacheStats, type EntriesSnapshot, type Metadata, type SnapshotEntry, type StatsSnapshot } from "../../protocol/index.js";

const FAR = Date.now() + 3_600_000;

export async function snapshot(generation: number, values: Record<string, unknown>, expiresAt = FAR): Promise<EntriesSnapshot> {
  const entries: Array<[string, SnapshotEntry]> = Object.entries(values).map(([k, value]) => [k, { value, expiresAt, lastAccessed: 1, cachedAt: 1 }]);
  return { format: 1, generation, writtenAt: Date.now(), digest: await digestEntries(entries), entries };
}

export function statsDoc(generation: number, size: number): StatsSnapshot {
  return { format: 1, generation, writtenAt: Date.now(), size, bytes: 10, hits: 0, misses: 0, evictions: 0, expirations: 0, hitRate: 0, oldestEntry: null, newestEntry: null, kvWritesToday: 2 };
}

export function liveStats(generation: number, pendingSince: number | null = null): CacheStats {
  return {
    size: 1, bytes: 10, hits: 3, misses: 1, evictions: 0, expirations: 0, hitRate: 0.75, oldestEntry: 1, newestEntry: 2, generation,
    kv: {
      lastFlushAt: 1, lastError: null, pendingSince, writesToday: 2, budget: 1000, mode: "coalesced", flushedGeneration: generation, nextAttemptAt: null, writable: true, failures: 0,
      pacing: { intervalMs: 10_000, baseIntervalMs: 10_000, steadyIntervalMs: 10_000, paced: false, nextFlushAt: null, reserve: 0, burst: 0, scheduledQuota: 0, budgetExhaustsAt: null },
    },
  };
}

/** GET /metadata for a DO holding `snap`: its generation and digest, the KV block, and the bounds (overridable). */
export function metadataFor(
  snap: Pick<EntriesSnapshot, "generation" | "digest" | "entries">,
  opts: { kv?: CacheStats["kv"]; limits?: Partial<Metadata["limits"]>; size?: number; bytes?: number; flushed?: Metadata["flushed"] } = {},
): Metadata {
  return {
    generation: snap.generation,
    digest: snap.digest,
    size: opts.size ?? snap.entries.length,
    bytes: opts.bytes ?? snap.entries.length * 100,
    limits: { maxEntries: 1000, maxBytes: 20_971_520, maxValueBytes: 1_048_576, maxKeyBytes: 512, maxSeedEntries: 10_000, maxValueDepth: 100, ...opts.limits },
    config: { kvTimeoutMs: 15_000, defaultTtlSeconds: 3600, flushIntervalSeconds: 10, dailyWriteBudget: 1000, syncMode: "coalesced", featureFlagDoCache: true },
    load: { source: "do", at: 1, durationMs: 1, kvSnapshot: { status: "ok", generation: snap.generation, error: null, verified: true } },
    kv: opts.kv ?? liveStats(snap.generation).kv,
    flushed: opts.flushed ?? null,
    storage: { databaseSize: 4096, rowsWritten: 0, bytesWritten: 0 },
  };
}

/** An empty cache's /metadata with the given bounds: what seed asks before sending. */
export const emptyMetadata = (limits: Partial<Metadata["limits"]> = {}, extra: { size?: number; bytes?: number } = {}) =>
  metadataFor({ generation: 1, digest: `sha256:${"e".repeat(64)}`, entries: [] }, { limits, ...extra });
