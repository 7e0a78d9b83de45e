/** What the one alarm has to do, and from when: everything that decides when it should next fire. */
export interface AlarmNeeds {
  now: number;
  flushIntervalMs: number;
  /** When KV's snapshot may next be written (pacing, the per-key floor, backoff), or null if nothing is owed. */
  kvDueAt: number | null;
  /** The next expiry (or end of a stale-if-error window) the sweep must act on; Infinity when none is known. */
  earliestExpiry: number;
  /** Stats counters or LRU read times wait to be persisted (lazily, never on the read path). */
  lazyStateDirty: boolean;
  /** When the oldest restore stage must be discarded, or null. */
  stageExpiresAt: number | null;
  /** When the KV snapshot not downloaded at start-up is to be checked, or null. */
  kvCheckAt: number | null;
}

/**
 * When the alarm should fire, or null when nothing needs it. Expiries and lazy state wait at least a flush
 * interval, so that a busy cache sweeps and persists in batches rather than on every write; never in the past.
 */
export function nextAlarmAt(n: AlarmNeeds): number | null {
  const candidates: number[] = [];
  if (n.kvDueAt !== null) candidates.push(n.kvDueAt);
  if (Number.isFinite(n.earliestExpiry)) candidates.push(Math.max(n.earliestExpiry, n.now + n.flushIntervalMs));
  if (n.lazyStateDirty) candidates.push(n.now + n.flushIntervalMs);
  if (n.stageExpiresAt !== null) candidates.push(n.stageExpiresAt);
  if (n.kvCheckAt !== null) candidates.push(n.kvCheckAt);
  return candidates.length === 0 ? null : Math.max(Math.min(...candidates), n.now);
}
