import { abortAllDurableObjects, runDurableObjectAlarm } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { apiJson, cacheStub, entryPath, fakeClock, freshState, futureMidnight, putJson } from "../worker/helpers.js";

// This project runs the Worker with CACHE_MAX_ENTRIES=5 and CACHE_MAX_BYTES=300000 (vitest.config.ts): bounds
// small enough to reach, including the one below the 1 MiB value limit.
beforeEach(freshState);

const put = (key: string, value: unknown) => putJson(entryPath(key), { value });
const get = (key: string) => apiJson(entryPath(key));
const keys = async () => (await apiJson("/api/v1/cache/entries")).body.data.keys.map((k: { key: string }) => k.key);

describe("small bounds", () => {
  it("refuses one entry larger than CACHE_MAX_BYTES (but under the 1 MiB value limit) and keeps the cache", async () => {
    await put("a", 1);
    await put("b", 2);
    const res = await put("huge", "x".repeat(400_000));
    expect(res.status).toBe(413);
    expect(res.body.error).toMatchObject({ code: "too_large", message: expect.stringMatching(/CACHE_MAX_BYTES is 300000/) });
    expect(await keys()).toEqual(["a", "b"]);
  });

  it("keeps LRU order across a restart: the least recently read entry is evicted first afterwards", async () => {
    const t0 = futureMidnight();
    const setClock = await fakeClock(t0);
    for (let i = 1; i <= 5; i++) {
      await setClock(t0 + i * 1000);
      await put(`k${i}`, i);
    }
    await setClock(t0 + 10_000);
    expect((await get("k1")).status).toBe(200); // k1 is now the most recently used; k2 the least
    await setClock(t0 + 20_000);
    await runDurableObjectAlarm(cacheStub()); // persists access times lazily
    await abortAllDurableObjects();
    await setClock(t0 + 30_000);
    expect((await put("k6", 6)).body.data.evicted).toBe(1);
    expect(await keys()).toEqual(["k1", "k3", "k4", "k5", "k6"]);
  });

  it("evicts by bytes: three 120 KB entries do not fit in 300,000 bytes", async () => {
    await put("a", "x".repeat(120_000));
    await put("b", "x".repeat(120_000));
    expect((await put("c", "x".repeat(120_000))).body.data.evicted).toBe(1);
    expect(await keys()).toEqual(["b", "c"]);
  });
});
