/**
 * Pacing of scheduled KV flushes across the UTC day, so continuous writes never exhaust the daily budget.
 *
 * Scheduled flushes (the alarm) may have spent, by any moment of the day, at most a straight line that starts at
 * a small burst allowance at 00:00 UTC and reaches the budget minus an operator reserve at 24:00. A quiet cache
 * builds up slack under that line, so a burst of writes after a quiet spell still reaches KV within
 * KV_FLUSH_INTERVAL_SECONDS; under continuous writes flushes settle at the line's rate, and the budget lasts the
 * day. The reserve is kept for the operator: `POST /flush` and `clear` may spend it, scheduled flushes never do.
 *
 * At the defaults (1,000 writes, reserve 50, burst 20, one write per flush plus the stats key every tenth),
 * continuous writes flush about every 102 s all day long: KV is never more than that behind the DO.
 */
export const DAY_MS = 86_400_000;
/** Share of the budget only an operator may spend (`POST /flush`, `clear`). */
export const RESERVE_SHARE = 0.05;
/** Share of the budget scheduled flushes may spend at once at the start of a day. */
export const BURST_SHARE = 0.02;
/** `do_cache_stats` is rewritten with every this-many-th scheduled flush (by time), not with each: see kv-sync. */
export const STATS_EVERY_FLUSHES = 10;

export const dayStartOf = (ms: number): number => Math.floor(ms / DAY_MS) * DAY_MS;
export const nextUtcMidnight = (ms: number): number => dayStartOf(ms) + DAY_MS;

export interface Pacing {
  budget: number;
  reserve: number;
  burst: number;
}

export function pacingFor(budget: number): Pacing {
  const reserve = Math.min(budget, Math.ceil(budget * RESERVE_SHARE));
  const burst = Math.min(budget - reserve, Math.max(2, Math.ceil(budget * BURST_SHARE)));
  return { budget, reserve, burst };
}

/** What scheduled flushes may have written by `now` today. */
export function scheduledQuota(p: Pacing, now: number): number {
  const usable = p.budget - p.reserve;
  return p.burst + (usable - p.burst) * ((now - dayStartOf(now)) / DAY_MS);
}

/**
 * The earliest moment, not before `now`, at which a scheduled flush costing `cost` writes fits under the line;
 * the next UTC midnight if it does not fit today.
 */
export function earliestScheduled(p: Pacing, writesToday: number, cost: number, now: number): number {
  const need = writesToday + cost;
  const usable = p.budget - p.reserve;
  if (need > usable) return nextUtcMidnight(now);
  if (need <= scheduledQuota(p, now)) return now;
  const fraction = (need - p.burst) / (usable - p.burst);
  return Math.max(now, dayStartOf(now) + Math.ceil(fraction * DAY_MS));
}

/** The interval between flushes the line allows under continuous writes (once the slack is spent). */
export function steadyIntervalMs(p: Pacing, writesPerFlush: number): number {
  const slope = (p.budget - p.reserve - p.burst) / DAY_MS; // writes per ms
  return slope > 0 ? Math.ceil(writesPerFlush / slope) : Number.POSITIVE_INFINITY;
}
