import type { KvStatus } from "../protocol/index.js";

/** Mirrors worker/cache/pacing.ts: the share of the budget scheduled flushes may spend, and their average cost. */
const SCHEDULED_SHARE = 1 - 0.05 - 0.02;
const WRITES_PER_FLUSH = 1.1;

/** The daily budget that would let scheduled flushes run every `intervalMs` all day. */
export function budgetFor(intervalMs: number): number {
  const needed = (86_400_000 / intervalMs) * WRITES_PER_FLUSH / SCHEDULED_SHARE;
  return Math.ceil(needed / 100) * 100;
}

/**
 * When the write budget, not KV_FLUSH_INTERVAL_SECONDS, decides how far KV lags: what `doctor` says, and what
 * to change. Null when the budget keeps up.
 */
export function pacingAdvice(kv: KvStatus): { detail: string; fix: string } | null {
  const p = kv.pacing;
  if (!p || !p.paced) return null;
  const base = Math.round(p.baseIntervalMs / 1000);
  const paced = Math.round(p.intervalMs / 1000);
  return {
    detail: `KV_DAILY_WRITE_BUDGET=${kv.budget} cannot keep KV within KV_FLUSH_INTERVAL_SECONDS=${base} at the current write rate: flushes are paced to every ${paced} s, so KV may lag the DO by that much`,
    fix: `raise KV_DAILY_WRITE_BUDGET to about ${budgetFor(p.baseIntervalMs)} (needs a plan with that many KV writes a day), or set KV_FLUSH_INTERVAL_SECONDS=${paced} to make the lag explicit`,
  };
}
