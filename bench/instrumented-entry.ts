/**
 * The benchmark's Worker: the real one, with a subclass of the real DO that adds timing methods. Production
 * code carries no benchmark hooks; this file is only ever bundled by bench/run.ts.
 */
import { CacheDurableObject as RealCacheDurableObject } from "../worker/cache/cache-do.js";
import worker from "../worker/index.js";
import { simulateDay, type DaySimulationOptions, type DaySimulationResult } from "./day-simulation.js";

export default worker;

/** workerd advances Date.now() only across I/O, so each timed loop ends with a zero-delay timer. */
const tick = () => new Promise((resolve) => setTimeout(resolve, 0));

export class CacheDurableObject extends RealCacheDurableObject {
  /** Milliseconds for `n` memory-tier hits of `key`, measured inside the DO. */
  async timeHits(key: string, n: number): Promise<number> {
    await tick();
    const t0 = Date.now();
    for (let i = 0; i < n; i++) {
      const r = await this.getEntry(key);
      if (!r.ok) throw new Error(`benchmark key ${key} missed`);
    }
    await tick();
    return Date.now() - t0;
  }

  /** A whole UTC day of continuous writes under a fake clock (bench/day-simulation.ts), on this instance. */
  async simulateDay(opts: DaySimulationOptions, schedule: "paced" | "greedy"): Promise<DaySimulationResult> {
    this.sync.schedule = schedule;
    return simulateDay(this, this.ctx.storage, opts);
  }
}
