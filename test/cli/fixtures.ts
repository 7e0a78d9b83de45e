import { digestEntries, type EntriesSnapshot, type SnapshotEntry, type StatsSnapshot, type CacheStats } from "../../protocol/index.js";

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
