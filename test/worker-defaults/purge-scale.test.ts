import { abortAllDurableObjects, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { ENTRIES_KEY, STATS_KEY } from "../../protocol/index.js";
import type { CacheDurableObject } from "../../worker/cache/cache-do.js";
import { apiJson, cacheStub, countKvWrites, fakeClock, freshState, futureNoon, postJson } from "../worker/helpers.js";

// The shipped KV defaults (budget 1,000, flush every 10 s), room for 300,000 entries and 2 MiB (vitest.config.ts):
// 10,000 entries of ~113 bytes at a time.
beforeEach(freshState);

const rows = () => runInDurableObject(cacheStub(), (_: CacheDurableObject, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM entries").one().n);
const seed = (prefix: string) =>
  postJson("/api/v1/cache/seed", { entries: Array.from({ length: 10_000 }, (_, i) => ({ key: `${prefix}${String(i).padStart(5, "0")}`, value: { i } })) });

describe("purging 10,000 keys by prefix (issue 15)", () => {
  it("costs one coalesced flush, hard or soft: at most 2 KV writes each, not 10,000", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    expect((await seed("a:")).status).toBe(200);
    expect((await postJson("/api/v1/cache/seed", { entries: [{ key: "other", value: 1 }] })).status).toBe(200);
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    await setClock(t0 + 60_000);

    const hardWrites = await countKvWrites();
    expect((await apiJson("/api/v1/cache/entries?prefix=a%3A", { method: "DELETE" })).body.data).toMatchObject({ deleted: 10_000 });
    expect(await rows()).toBe(1);
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    expect(hardWrites.puts.length).toBeLessThanOrEqual(2);
    expect(hardWrites.puts.every((k) => k === ENTRIES_KEY || k === STATS_KEY)).toBe(true);
    expect(JSON.parse((await env.CACHE_DO_KV.get(ENTRIES_KEY, "text"))!).entries.map(([k]: [string]) => k)).toEqual(["other"]);

    expect((await seed("b:")).status).toBe(200);
    await setClock(t0 + 90_000);
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    await setClock(t0 + 120_000);
    const softWrites = await countKvWrites();
    expect((await apiJson("/api/v1/cache/entries?prefix=b%3A&mode=soft", { method: "DELETE" })).body.data).toMatchObject({ mode: "soft", marked: 10_000 });
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    expect(softWrites.puts.length).toBeLessThanOrEqual(2);
    const marked = (entries: Array<[string, { freshUntil?: number }]>) => entries.filter(([, e]) => e.freshUntil === t0 + 120_000).length;
    expect(marked(JSON.parse((await env.CACHE_DO_KV.get(ENTRIES_KEY, "text"))!).entries)).toBe(10_000);
    await abortAllDurableObjects();
    expect(await rows()).toBe(10_001);
    expect(marked((await apiJson("/api/v1/cache/snapshot")).body.data.entries)).toBe(10_000);
  }, 120_000);
});
