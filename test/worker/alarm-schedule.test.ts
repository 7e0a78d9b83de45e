import { describe, expect, it } from "vitest";
import { nextAlarmAt, type AlarmNeeds } from "../../worker/cache/alarm-schedule.js";
import { futureNoon } from "./helpers.js";

const now = futureNoon();
const idle: AlarmNeeds = { now, flushIntervalMs: 10_000, kvDueAt: null, earliestExpiry: Number.POSITIVE_INFINITY, lazyStateDirty: false, stageExpiresAt: null, kvCheckAt: null };

describe("when the one alarm fires (worker/cache/alarm-schedule.ts)", () => {
  it("not at all when nothing needs it", () => {
    expect(nextAlarmAt(idle)).toBeNull();
  });

  it("at the earliest need: a KV flush, a stage to discard, the start-up KV check", () => {
    expect(nextAlarmAt({ ...idle, kvDueAt: now + 7_000, stageExpiresAt: now + 3_600_000 })).toBe(now + 7_000);
    expect(nextAlarmAt({ ...idle, kvDueAt: now + 7_000, kvCheckAt: now + 2_000 })).toBe(now + 2_000);
  });

  it("expiries and lazy state wait a flush interval, so a busy cache sweeps and persists in batches", () => {
    expect(nextAlarmAt({ ...idle, earliestExpiry: now + 1 })).toBe(now + 10_000);
    expect(nextAlarmAt({ ...idle, earliestExpiry: now + 60_000 })).toBe(now + 60_000);
    expect(nextAlarmAt({ ...idle, lazyStateDirty: true })).toBe(now + 10_000);
  });

  it("never in the past: an overdue need fires now", () => {
    expect(nextAlarmAt({ ...idle, kvDueAt: now - 5_000 })).toBe(now);
    expect(nextAlarmAt({ ...idle, stageExpiresAt: now - 1 })).toBe(now);
  });
});
