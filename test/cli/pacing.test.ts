import { describe, expect, it } from "vitest";
import { budgetFor } from "../../cli/pacing-advice.js";
import { ADMIN_KEY, cli, json, mockAgent, ok } from "./harness.js";
import { liveStats } from "./fixtures.js";

/** Stats of a cache whose flushes the budget is pacing: 102 s instead of the 10 s base interval. */
function pacedStats() {
  const s = liveStats(9, Date.now() - 30_000);
  s.kv.pacing = { intervalMs: 102_000, baseIntervalMs: 10_000, steadyIntervalMs: 102_000, paced: true, nextFlushAt: Date.now() + 72_000, reserve: 50, burst: 20, scheduledQuota: 400, budgetExhaustsAt: null };
  return s;
}

const worker = (stats: unknown) => {
  const agent = mockAgent();
  const w = agent.get("http://worker.test");
  w.intercept({ path: "/health", method: "GET" }).reply(200, ok({ status: "ok", version: "0.1.0" }), { headers: { "content-type": "application/json", date: new Date().toUTCString() } });
  w.intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, ok(stats), json).times(3);
  return agent;
};
const target = ["--url", "http://worker.test", "--api-key", ADMIN_KEY];

describe("pacing in stats and doctor", () => {
  it("stats shows the paced interval, when the next flush is due, and the operator reserve", async () => {
    const r = await cli([...target, "stats"], { agent: worker(pacedStats()) });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/kv flush interval[\s│]+102s \(paced by the budget; base 10s\)/);
    expect(r.stdout).toMatch(/kv next flush[\s│]+in 1m/);
    expect(r.stdout).toMatch(/kv reserve[\s│]+50 writes/);
  });

  it("stats names when the budget runs out, when it would, and says when KV cannot be written", async () => {
    const s = liveStats(9);
    s.kv = { ...s.kv, writable: false, lastError: "daily KV write budget exhausted" };
    s.kv.pacing = { ...s.kv.pacing, budgetExhaustsAt: Date.now() + 2 * 3_600_000 };
    const r = await cli([...target, "stats"], { agent: worker(s) });
    expect(r.stdout).toMatch(/kv budget runs out[\s│]+in 2\.0h/);
    expect(r.stdout).toMatch(/kv writable[\s│]+no/);
  });

  it("doctor warns (exit 0) when the budget cannot keep KV within KV_FLUSH_INTERVAL_SECONDS, and says what to change", async () => {
    const r = await cli([...target, "--json", "doctor"], { agent: worker(pacedStats()) });
    expect(r.code).toBe(0);
    const check = JSON.parse(r.stdout).checks.find((c: { name: string }) => c.name === "kv pacing");
    expect(check).toMatchObject({ verdict: "warn", detail: expect.stringMatching(/KV_DAILY_WRITE_BUDGET=1000 cannot keep KV within KV_FLUSH_INTERVAL_SECONDS=10 .* every 102 s/) });
    expect(check.fix).toMatch(/raise KV_DAILY_WRITE_BUDGET to about 10300/);
    expect(check.fix).toMatch(/KV_FLUSH_INTERVAL_SECONDS=102/);
    const calm = await cli([...target, "--json", "doctor"], { agent: worker(liveStats(9)) });
    expect(JSON.parse(calm.stdout).checks.find((c: { name: string }) => c.name === "kv pacing")).toBeUndefined();
  });

  it("the budget advice matches the pacing line: flushes every 10 s need about 10,300 writes a day", () => {
    expect(budgetFor(10_000)).toBe(10_300);
    // and the 1,000 of the defaults pace flushes to about 102 s
    expect(budgetFor(102_000)).toBeGreaterThanOrEqual(1_000);
    expect(budgetFor(102_000)).toBeLessThanOrEqual(1_100);
  });
});
