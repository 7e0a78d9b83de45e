/**
 * A whole UTC day of continuous writes against the real DO, under a fake clock, measuring how far KV falls
 * behind and whether the write budget lasts. Used by the benchmark (bench/instrumented-entry.ts) and by the
 * worker tests (test/worker/pacing.test.ts); it drives the DO's own methods and its own alarm, in workerd.
 *
 * The day starts at a UTC midnight at least a day after the real clock, so that every alarm the DO sets lies in
 * the real clock's future: workerd fires alarms by the real clock, and only this loop may run them.
 */
import type { CacheDurableObject } from "../worker/cache/cache-do.js";
import { clock } from "../worker/clock.js";

export interface DaySimulationOptions {
  /** One write every this many ms, all day. */
  writeEveryMs: number;
  /** How many distinct keys the writes cycle through. */
  keys?: number;
  /** Hours to simulate (24: the whole day). */
  hours?: number;
  /** Quiet hours before the writes start (the budget's slack builds up meanwhile). */
  quietHours?: number;
}

export interface DaySimulationResult {
  maxLagSeconds: number;
  kvWrites: number;
  flushes: number;
  budget: number;
  budgetExhausted: boolean;
  scheduledFlushesRefusedForBudget: number;
  writes: number;
  simulatedHours: number;
}

const DAY_MS = 86_400_000;

export const futureMidnight = (realNow = Date.now()) => Math.floor(realNow / DAY_MS) * DAY_MS + 2 * DAY_MS;

export async function simulateDay(cache: CacheDurableObject, storage: DurableObjectStorage, opts: DaySimulationOptions): Promise<DaySimulationResult> {
  const start = futureMidnight();
  const hours = opts.hours ?? 24;
  const end = start + hours * 3_600_000;
  const keys = opts.keys ?? 100;
  let now = start + (opts.quietHours ?? 0) * 3_600_000;
  const realNow = clock.now;
  clock.now = () => now;
  let maxLag = 0;
  let flushes = 0;
  let writes = 0;
  let refused = 0;
  let writesAtEnd = 0;
  try {
    let lastFlushAt = cache.sync.status().lastFlushAt;
    while (now < end) {
      await cache.putEntry({ key: `sim:${writes % keys}`, value: JSON.stringify({ px: writes, at: now }) });
      writes++;
      const next = now + opts.writeEveryMs;
      // Run every alarm due before the next write, at its own time.
      for (let guard = 0; guard < 100; guard++) {
        const alarm = await storage.getAlarm();
        if (alarm === null || alarm >= next) break;
        now = Math.max(now, alarm);
        const before = cache.sync.status();
        if (before.pendingSince !== null) maxLag = Math.max(maxLag, now - before.pendingSince);
        await cache.alarm();
        const after = cache.sync.status();
        if (after.lastFlushAt !== lastFlushAt) flushes++;
        lastFlushAt = after.lastFlushAt;
        if (after.lastError?.startsWith("daily KV write budget")) refused++;
      }
      now = next;
      const status = cache.sync.status();
      if (status.pendingSince !== null) maxLag = Math.max(maxLag, Math.min(now, end) - status.pendingSince);
      if (now < end) writesAtEnd = status.writesToday;
    }
    const status = cache.sync.status();
    return {
      maxLagSeconds: Math.round(maxLag / 1000),
      kvWrites: writesAtEnd,
      flushes,
      budget: status.budget,
      budgetExhausted: refused > 0 || writesAtEnd >= status.budget,
      scheduledFlushesRefusedForBudget: refused,
      writes,
      simulatedHours: hours,
    };
  } finally {
    clock.now = realNow;
    await storage.deleteAlarm();
  }
}
