import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { simulateDay } from "../../bench/day-simulation.js";
import type { CacheDurableObject } from "../../worker/cache/cache-do.js";
import { apiJson, cacheStub, fakeClock, freshState, futureMidnight, postJson, putJson, entryPath } from "../worker/helpers.js";

// This project runs the Worker at the shipped defaults for KV: KV_DAILY_WRITE_BUDGET=1000,
// KV_FLUSH_INTERVAL_SECONDS=10 (vitest.config.ts).
beforeEach(freshState);

const simulate = (opts: Parameters<typeof simulateDay>[2]) =>
  runInDurableObject(cacheStub(), (instance: CacheDurableObject, state) => simulateDay(instance, state.storage, opts));

describe("a whole UTC day of continuous writes at the defaults", () => {
  it("keeps KV within 180 s of the DO all day and never exhausts the budget", async () => {
    const day = await simulate({ writeEveryMs: 5_000 });
    expect(day.writes).toBe(17_280);
    expect(day.budgetExhausted).toBe(false);
    expect(day.kvWrites).toBeLessThanOrEqual(950); // the 5% operator reserve is never touched by the schedule
    expect(day.kvWrites).toBeGreaterThan(800); // and the budget is used, not hoarded
    expect(day.maxLagSeconds).toBeLessThanOrEqual(180);
  }, 120_000);

  it("the greedy schedule of 0.1 (both keys every 10 s) runs out within hours: what pacing fixes", async () => {
    await runInDurableObject(cacheStub(), (i: CacheDurableObject) => {
      i.sync.schedule = "greedy";
    });
    const day = await simulate({ writeEveryMs: 5_000, hours: 6 });
    expect(day.budgetExhausted).toBe(true);
    expect(day.maxLagSeconds).toBeGreaterThan(3600);
  }, 120_000);

  it("after a quiet morning, a burst of writes reaches KV within the flush interval", async () => {
    const day = await simulate({ writeEveryMs: 1_000, quietHours: 10, hours: 10.1 });
    expect(day.writes).toBeGreaterThanOrEqual(359);
    expect(day.maxLagSeconds).toBeLessThanOrEqual(12); // 10 s interval, plus the 1 write/s/key floor and a step
  }, 60_000);
});

describe("pacing seen from the API", () => {
  it("under continuous writes from midnight, /stats shows the paced interval and the next flush; POST /flush still writes from the reserve", async () => {
    const midnight = futureMidnight();
    const setClock = await fakeClock(midnight);
    let t = midnight;
    // Two hours of a write every 5 s, running each alarm when it is due.
    for (let i = 0; i < 1_440; i++) {
      await putJson(entryPath(`k${i % 20}`), { value: i });
      t += 5_000;
      await setClock(t);
      const alarm = await runInDurableObject(cacheStub(), (_: CacheDurableObject, s) => s.storage.getAlarm());
      if (alarm !== null && alarm <= t) await runDurableObjectAlarm(cacheStub());
    }
    const kv = (await apiJson("/api/v1/cache/stats")).body.data.kv;
    expect(kv.pacing.paced).toBe(true);
    expect(kv.pacing.intervalMs).toBe(kv.pacing.steadyIntervalMs);
    expect(kv.pacing.steadyIntervalMs).toBeGreaterThan(60_000);
    expect(kv.pacing.steadyIntervalMs).toBeLessThanOrEqual(180_000);
    expect(kv.pacing.nextFlushAt).toBeGreaterThan(t);
    expect(kv.pacing.reserve).toBe(50);
    expect(kv.pacing.budgetExhaustsAt).toBeNull();
    expect(kv.writable).toBe(true);
    // The operator is not paced: a flush now writes at once.
    const forced = (await postJson("/api/v1/cache/flush", {})).body.data;
    expect(forced).toMatchObject({ written: true });
    expect(forced.upToDate).toBeUndefined();
  }, 120_000);
});

describe("the snapshot stays within the byte bound whatever the entry count", () => {
  it("20,000 entries of ~25 bytes in a 2 MiB bound: the bound counts their real snapshot cost, evicts, and the snapshot fits", async () => {
    const entries = Array.from({ length: 20_000 }, (_, i) => ({ key: `k${String(i).padStart(6, "0")}`, value: `v${i}`.padEnd(12, ".") }));
    for (let i = 0; i < entries.length; i += 10_000) expect((await postJson("/api/v1/cache/seed", { entries: entries.slice(i, i + 10_000) })).status).toBe(200);
    const s = (await apiJson("/api/v1/cache/stats")).body.data;
    expect(s.evictions).toBeGreaterThan(0);
    expect(s.bytes).toBeLessThanOrEqual(2 * 1024 * 1024);
    const flushed = (await postJson("/api/v1/cache/flush", {})).body.data;
    expect(flushed.written).toBe(true);
    const text = (await env.CACHE_DO_KV.get("do_cache_entries", "text"))!;
    const bytes = new TextEncoder().encode(text).byteLength;
    expect(bytes).toBeLessThanOrEqual(2 * 1024 * 1024 + 4096);
    expect(bytes).toBeGreaterThan(0.95 * s.bytes); // the count is close, not wildly conservative
    expect(flushed.entries).toBe(s.size);
  }, 60_000);
});
