import { abortAllDurableObjects, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { ENTRIES_KEY, STATS_KEY, digestEntries } from "../../protocol/index.js";
import type { CacheDurableObject } from "../../worker/cache/cache-do.js";
import { apiJson, cacheStub, countKvWrites, entryPath, fakeClock, freshState, futureMidnight, postJson, putJson } from "./helpers.js";
import { readKvJson, writeKvSnapshot } from "./kv-fixtures.js";

beforeEach(freshState);

/** Noon of the fake day every test starts on (see futureMidnight): derived from the real clock, never a date. */
const noon = () => futureMidnight() + 12 * 3_600_000;
const get = (key: string) => apiJson(entryPath(key));
const put = (key: string, value: unknown, ttlSeconds?: number) => putJson(entryPath(key), ttlSeconds === undefined ? { value } : { value, ttlSeconds });
const stats = async () => (await apiJson("/api/v1/cache/stats")).body.data;
const metadata = async () => (await apiJson("/api/v1/cache/metadata")).body.data;
const rowCount = () =>
  runInDurableObject(cacheStub(), (_: CacheDurableObject, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM entries").one().n);

describe("reads: hit, miss, expiry", () => {
  it("counts hits and misses and reports the hit rate", async () => {
    await put("q:AAPL", { bid: 1 });
    expect((await get("q:AAPL")).status).toBe(200);
    expect((await get("q:AAPL")).status).toBe(200);
    expect((await get("q:MSFT")).status).toBe(404);
    const s = await stats();
    expect(s).toMatchObject({ hits: 2, misses: 1, size: 1, hitRate: 0.667 });
  });

  it("never returns an expired entry, and counts the expiry", async () => {
    const T0 = noon();
    const setClock = await fakeClock(T0);
    await put("short", "v", 10);
    await put("long", "v", 100);
    await setClock(T0 + 9_999);
    expect((await get("short")).status).toBe(200);
    await setClock(T0 + 10_000);
    const miss = await get("short");
    expect(miss.status).toBe(404);
    expect(miss.body.error.code).toBe("not_found");
    const listing = (await apiJson("/api/v1/cache/entries")).body.data;
    expect(listing.keys.map((k: { key: string }) => k.key)).toEqual(["long"]);
    expect(await stats()).toMatchObject({ expirations: 1, size: 1 });
  });

  it("uses CACHE_DEFAULT_TTL_SECONDS when no TTL is given", async () => {
    const T0 = noon();
    await fakeClock(T0);
    const res = await put("k", 1);
    expect(res.body.data.expiresAt).toBe(T0 + 3600 * 1000);
  });

  it("sweeps expired entries from storage in the alarm and marks KV owed", async () => {
    const T0 = noon();
    const setClock = await fakeClock(T0);
    await put("a", 1, 5);
    await put("b", 2, 500);
    await setClock(T0 + 60_000);
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    expect(await rowCount()).toBe(1);
    const kv = await readKvJson(ENTRIES_KEY);
    expect(kv.entries.map((e: [string]) => e[0])).toEqual(["b"]);
  });
});

describe("bounds: LRU by entries and by bytes", () => {
  it("evicts the least recently used entry when CACHE_MAX_ENTRIES is passed", async () => {
    const entries = Array.from({ length: 1000 }, (_, i) => ({ key: `k${i}`, value: i }));
    expect((await postJson("/api/v1/cache/seed", { entries })).status).toBe(200);
    expect((await get("k0")).status).toBe(200); // k0 becomes most recently used; k1 is now the LRU
    const res = await put("new", "x");
    expect(res.body.data.evicted).toBe(1);
    expect((await get("k1")).status).toBe(404);
    expect((await get("k0")).status).toBe(200);
    expect(await stats()).toMatchObject({ size: 1000, evictions: 1 });
    expect(await rowCount()).toBe(1000);
  });

  it("evicts by bytes when CACHE_MAX_BYTES (2 MiB in tests) is passed", async () => {
    const big = "x".repeat(700 * 1024);
    await put("b1", big);
    await put("b2", big);
    await put("b3", big);
    const s = await stats();
    expect(s.size).toBe(2);
    expect(s.bytes).toBeLessThanOrEqual(2 * 1024 * 1024);
    expect((await get("b1")).status).toBe(404);
    expect((await get("b3")).status).toBe(200);
    expect(await rowCount()).toBe(2);
  });

  it("refuses one entry larger than the whole byte bound instead of emptying the cache", async () => {
    await put("keep", 1);
    const res = await putJson(entryPath("huge"), { value: "y".repeat(1000 * 1024) });
    expect(res.status).toBe(200); // 1000 KiB fits in 2 MiB
    const two = await postJson("/api/v1/cache/seed", { entries: [{ key: "a", value: "z".repeat(1000 * 1024) }, { key: "b", value: "z".repeat(1000 * 1024) }] });
    expect(two.status).toBe(200);
    expect((await get("b")).status).toBe(200);
  });
});

describe("generation and persistence", () => {
  it("increases the generation on every mutation, and not on reads", async () => {
    const g1 = (await put("a", 1)).body.data.generation;
    const g2 = (await put("a", 2)).body.data.generation;
    await get("a");
    const del = await apiJson(entryPath("a"), { method: "DELETE" });
    expect(g2).toBe(g1 + 1);
    expect(del.body.data.generation).toBe(g2 + 1);
    expect((await metadata()).generation).toBe(g2 + 1);
  });

  it("writes one entry row per set, never the whole cache: the cost is the same at 10 and at 500 entries", async () => {
    const rowsWritten = () => runInDurableObject(cacheStub(), (i: CacheDurableObject) => i.store.rowsWritten);
    const costOfOnePut = async (key: string) => {
      const before = await rowsWritten();
      await put(key, "changed");
      return (await rowsWritten()) - before;
    };
    await postJson("/api/v1/cache/seed", { entries: Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: i })) });
    const small = await costOfOnePut("k7");
    await postJson("/api/v1/cache/seed", { entries: Array.from({ length: 500 }, (_, i) => ({ key: `k${i}`, value: i })) });
    const large = await costOfOnePut("k7");
    expect(large).toBe(small);
    // The entry row (an upsert touches the row and its key index) and the generation, count and byte-total meta rows.
    expect(large).toBeLessThanOrEqual(5);
  });

  it("reloads entries, LRU order and counters after a restart", async () => {
    await put("a", { n: 1 });
    await put("b", { n: 2 });
    await get("a");
    await runDurableObjectAlarm(cacheStub()); // lazy persistence of counters and access times
    await abortAllDurableObjects();
    const got = await get("a");
    expect(got.body.data.value).toEqual({ n: 1 });
    const m = await metadata();
    expect(m.load.source).toBe("do");
    expect(await stats()).toMatchObject({ size: 2, hits: 2 });
  });
});

describe("load precedence: DO storage vs KV snapshot", () => {
  it("adopts a KV snapshot with a higher generation (DO lost its data)", async () => {
    await put("local", 1); // generation 1
    await writeKvSnapshot(50, { remote: { px: 101.5 }, other: [1, 2] });
    await abortAllDurableObjects();
    expect((await get("remote")).body.data.value).toEqual({ px: 101.5 });
    expect((await get("local")).status).toBe(404);
    const m = await metadata();
    expect(m.load.source).toBe("kv");
    expect(m.generation).toBe(50);
    expect(await rowCount()).toBe(2);
  });

  it("keeps DO data when DO storage is newer, and reports KV as stale", async () => {
    await put("a", 1);
    await put("b", 2);
    await put("c", 3);
    await writeKvSnapshot(1, { old: 1 });
    await abortAllDurableObjects();
    expect((await get("old")).status).toBe(404);
    const m = await metadata();
    expect(m.load.source).toBe("do");
    expect(m.load.kvSnapshot.status).toBe("stale");
  });

  it("keeps DO data when generations are equal", async () => {
    await put("a", "from-do");
    await writeKvSnapshot(1, { a: "from-kv" });
    await abortAllDurableObjects();
    expect((await get("a")).body.data.value).toBe("from-do");
  });

  it("never loads a corrupt snapshot, reports it, and replaces it on the next flush", async () => {
    await put("good", 1);
    await env.CACHE_DO_KV.put(ENTRIES_KEY, "{not json at all");
    await abortAllDurableObjects();
    expect((await get("good")).status).toBe(200);
    const m = await metadata();
    expect(m.load.kvSnapshot.status).toBe("corrupt");
    expect(m.load.kvSnapshot.error).toMatch(/not valid JSON/);
    expect(m.kv.pendingSince).not.toBeNull();
    await postJson("/api/v1/cache/flush", {});
    expect((await readKvJson(ENTRIES_KEY)).entries[0][0]).toBe("good");
  });

  it("never loads a torn snapshot even with a much higher generation", async () => {
    await put("good", 1);
    const snap = await writeKvSnapshot(999, { evil: 1 });
    snap.entries[0]![1].value = 2; // digest no longer matches
    await env.CACHE_DO_KV.put(ENTRIES_KEY, JSON.stringify(snap));
    await abortAllDurableObjects();
    expect((await get("evil")).status).toBe(404);
    expect((await get("good")).status).toBe(200);
    const m = await metadata();
    expect(m.load.source).toBe("do");
    expect(m.load.kvSnapshot).toMatchObject({ status: "torn", generation: 999 });
  });
});

describe("KV snapshot writes", () => {
  it("coalesces 1,000 sets into one flush of the two keys", async () => {
    const writes = await countKvWrites();
    for (let i = 0; i < 1000; i++) await put(`k${i % 200}`, i);
    expect(writes.puts).toEqual([]);
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    expect(writes.puts.sort()).toEqual([ENTRIES_KEY, STATS_KEY].sort());
    const s = await stats();
    expect(s.kv).toMatchObject({ writesToday: 2, pendingSince: null, lastError: null, mode: "coalesced" });
  });

  it("writes entries and stats in the contract's format, with the DO snapshot's digest", async () => {
    await put("b", { z: 1, a: [1, { y: 2, x: 1 }] });
    await put("a", "text", 60);
    await apiJson(entryPath("a"));
    const flushed = (await postJson("/api/v1/cache/flush", {})).body.data;
    expect(flushed.written).toBe(true);
    const kv = await readKvJson(ENTRIES_KEY);
    const doSnap = (await apiJson("/api/v1/cache/snapshot")).body.data;
    expect(kv.digest).toBe(doSnap.digest);
    expect(kv.digest).toBe(flushed.digest);
    expect(kv.digest).toBe(await digestEntries(kv.entries));
    expect(kv).toMatchObject({ format: 1, generation: flushed.generation });
    expect(kv.entries.map((e: [string]) => e[0])).toEqual(["a", "b"]);
    expect(kv.entries[0][1]).toEqual({ value: "text", expiresAt: expect.any(Number), lastAccessed: expect.any(Number), cachedAt: expect.any(Number) });
    const statsKv = await readKvJson(STATS_KEY);
    expect(statsKv).toMatchObject({ format: 1, generation: flushed.generation, size: 2, hits: 1, misses: 0, kvWritesToday: 2 });
    const withMeta = await env.CACHE_DO_KV.getWithMetadata(ENTRIES_KEY);
    expect(withMeta.metadata).toMatchObject({ generation: flushed.generation, digest: flushed.digest });
  });

  it("honours KV's one write per second per key: a second flush waits it out", async () => {
    await put("a", 1);
    const writes = await countKvWrites();
    await postJson("/api/v1/cache/flush", {});
    const t = Date.now();
    await put("a", 2);
    const second = (await postJson("/api/v1/cache/flush", {})).body.data;
    expect(second.written).toBe(true);
    expect(Date.now() - t).toBeGreaterThanOrEqual(900);
    expect(writes.puts.length).toBe(4);
  });

  it("stops at the daily budget, says so, and resumes the next UTC day", async () => {
    const T0 = noon();
    const setClock = await fakeClock(T0);
    const writes = await countKvWrites();
    let t = T0;
    for (let i = 0; i < 20; i++) {
      await put("k", i);
      t += 2_000;
      await setClock(t);
      expect((await postJson("/api/v1/cache/flush", {})).body.data.written).toBe(true);
    }
    await put("k", "over");
    const refused = (await postJson("/api/v1/cache/flush", {})).body.data;
    expect(refused.written).toBe(false);
    expect(refused.error).toMatch(/budget exhausted/);
    const s = await stats();
    expect(s.kv).toMatchObject({ writesToday: 40, budget: 40 });
    expect(s.kv.lastError).toMatch(/budget/);
    expect(s.kv.nextAttemptAt).toBe(futureMidnight() + 86_400_000);
    expect(writes.puts.length).toBe(40);
    await abortAllDurableObjects(); // the count is persisted, not just in memory
    const setAgain = await fakeClock(t);
    expect((await postJson("/api/v1/cache/flush", {})).body.data.written).toBe(false);
    await setAgain(futureMidnight() + 86_400_000 + 1_000);
    expect((await postJson("/api/v1/cache/flush", {})).body.data.written).toBe(true);
    expect((await stats()).kv).toMatchObject({ writesToday: 2, lastError: null });
  });

  it("keeps serving when KV throws, records the error, and the alarm retries", async () => {
    const setClock = await fakeClock();
    const failing = { put: async () => { throw new Error("KV is down"); }, delete: async () => { throw new Error("KV is down"); } };
    let real!: KVNamespace;
    await runInDurableObject(cacheStub(), (i: CacheDurableObject) => {
      real = i.sync.kv;
      i.sync.kv = failing as unknown as KVNamespace;
    });
    expect((await put("a", 1)).status).toBe(200);
    expect((await get("a")).status).toBe(200);
    const flushed = (await postJson("/api/v1/cache/flush", {})).body.data;
    expect(flushed).toMatchObject({ written: false, error: expect.stringMatching(/KV is down/) });
    const s = await stats();
    expect(s.kv.lastError).toMatch(/KV is down/);
    expect(s.kv.nextAttemptAt).toBeGreaterThan(Date.now());
    await runInDurableObject(cacheStub(), async (i: CacheDurableObject, state) => {
      expect(await state.storage.getAlarm()).not.toBeNull();
      i.sync.kv = real;
    });
    await setClock(s.kv.nextAttemptAt); // the retry waits out its backoff
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    expect((await stats()).kv).toMatchObject({ lastError: null, pendingSince: null });
    expect((await readKvJson(ENTRIES_KEY)).entries[0][0]).toBe("a");
  });
});

describe("clear", () => {
  it("empties memory, DO rows and both KV keys at once", async () => {
    await put("a", 1);
    await put("b", 2);
    await postJson("/api/v1/cache/flush", {});
    expect(await readKvJson(STATS_KEY)).not.toBeNull();
    const res = await apiJson("/api/v1/cache", { method: "DELETE" });
    expect(res.body.data).toMatchObject({ scope: "all", deletedEntries: 2, kvKeysDeleted: true });
    expect(await env.CACHE_DO_KV.get(ENTRIES_KEY)).toBeNull();
    expect(await env.CACHE_DO_KV.get(STATS_KEY)).toBeNull();
    expect(await rowCount()).toBe(0);
    expect((await get("a")).status).toBe(404);
    await abortAllDurableObjects();
    expect((await get("b")).status).toBe(404);
  });

  it("scope=do keeps KV until the next flush; scope=kv keeps the DO", async () => {
    await put("a", 1);
    await postJson("/api/v1/cache/flush", {});
    await apiJson("/api/v1/cache?scope=kv", { method: "DELETE" });
    expect(await env.CACHE_DO_KV.get(ENTRIES_KEY)).toBeNull();
    expect((await get("a")).status).toBe(200);
    await put("b", 2);
    await postJson("/api/v1/cache/flush", {});
    await apiJson("/api/v1/cache?scope=do", { method: "DELETE" });
    expect((await readKvJson(ENTRIES_KEY)).entries).toHaveLength(2);
    expect(await rowCount()).toBe(0);
    expect((await stats()).kv.pendingSince).not.toBeNull();
  });
});

describe("KV write economy", () => {
  it("30 concurrent POST /flush with nothing new write nothing; with one new write they share one flush", async () => {
    await put("a", 1);
    expect((await postJson("/api/v1/cache/flush", {})).body.data.written).toBe(true);
    const writes = await countKvWrites();
    const idle = await Promise.all(Array.from({ length: 30 }, () => postJson("/api/v1/cache/flush", {})));
    for (const r of idle) expect(r.body.data).toMatchObject({ written: true, upToDate: true, entries: 1 });
    expect(writes.puts).toEqual([]);
    await put("b", 2);
    const busy = await Promise.all(Array.from({ length: 30 }, () => postJson("/api/v1/cache/flush", {})));
    const generation = (await stats()).generation;
    for (const r of busy) expect(r.body.data).toMatchObject({ written: true, generation });
    expect(writes.puts.sort()).toEqual([ENTRIES_KEY, STATS_KEY].sort());
    expect((await stats()).kv.writesToday).toBe(4);
  });

  it("a forced flush rewrites a snapshot deleted behind the DO's back", async () => {
    await put("a", 1);
    await postJson("/api/v1/cache/flush", {});
    await env.CACHE_DO_KV.delete(ENTRIES_KEY); // wrangler kv key delete, say
    const again = (await postJson("/api/v1/cache/flush", {})).body.data;
    expect(again.upToDate).toBeUndefined();
    expect((await readKvJson(ENTRIES_KEY)).entries[0][0]).toBe("a");
  });

  it("a forced flush rewrites a torn snapshot even when its metadata was copied from the good one", async () => {
    await put("a", 1);
    await postJson("/api/v1/cache/flush", {});
    const { value, metadata: meta } = await env.CACHE_DO_KV.getWithMetadata<Record<string, unknown>>(ENTRIES_KEY, "text");
    const torn = JSON.parse(value!);
    torn.entries[0][1].value = "EVIL"; // the digest no longer holds
    await env.CACHE_DO_KV.put(ENTRIES_KEY, JSON.stringify(torn), { metadata: meta });
    const again = (await postJson("/api/v1/cache/flush", {})).body.data;
    expect(again).toMatchObject({ written: true });
    expect(again.upToDate).toBeUndefined();
    expect((await readKvJson(ENTRIES_KEY)).entries[0][1].value).toBe(1);
  });

  it("clear counts its two KV deletes, and refuses them when the budget is spent", async () => {
    await put("a", 1);
    await postJson("/api/v1/cache/flush", {});
    expect((await stats()).kv.writesToday).toBe(2);
    await apiJson("/api/v1/cache?scope=kv", { method: "DELETE" });
    expect((await stats()).kv.writesToday).toBe(4);
    await postJson("/api/v1/cache/flush", {});
    await runInDurableObject(cacheStub(), (i: CacheDurableObject) => {
      (i.sync as unknown as { writesToday: number }).writesToday = 39; // budget is 40 in tests
    });
    const writes = await countKvWrites();
    const res = (await apiJson("/api/v1/cache", { method: "DELETE" })).body.data;
    expect(res).toMatchObject({ kvKeysDeleted: false, kvError: expect.stringMatching(/budget exhausted/) });
    expect(writes.deletes).toEqual([]);
    const s = await stats();
    expect(s.kv.writesToday).toBe(39);
    expect(s.kv.pendingSince).not.toBeNull(); // the first flush the budget allows replaces the stale snapshot
    expect(s.size).toBe(0);
  });

  it("a flush keeps KV owed when a write lands while its puts are in flight", async () => {
    const T0 = noon();
    const setClock = await fakeClock(T0);
    await put("a", 1);
    await runInDurableObject(cacheStub(), (i: CacheDurableObject) => {
      const real = i.sync.kv;
      let injected = false;
      i.sync.kv = {
        get: real.get.bind(real),
        list: real.list.bind(real),
        getWithMetadata: real.getWithMetadata.bind(real),
        delete: real.delete.bind(real),
        put: (async (key: string, value: string, opts?: KVNamespacePutOptions) => {
          if (!injected) {
            injected = true;
            await i.putEntry({ key: "late", value: "2" });
          }
          return real.put(key, value, opts);
        }) as KVNamespace["put"],
      } as KVNamespace;
    });
    const flushed = (await postJson("/api/v1/cache/flush", {})).body.data;
    expect(flushed.written).toBe(true);
    expect((await readKvJson(ENTRIES_KEY)).entries.map((e: [string]) => e[0])).toEqual(["a"]);
    const s = await stats();
    expect(s.kv.pendingSince).not.toBeNull();
    expect(s.kv.flushedGeneration).toBeLessThan(s.generation);
    await setClock(T0 + 10_000);
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    expect((await readKvJson(ENTRIES_KEY)).entries.map((e: [string]) => e[0])).toEqual(["a", "late"]);
  });

  it("retries a failing KV with exponential backoff from 2 s, capped at 5 min", async () => {
    const T0 = noon();
    const setClock = await fakeClock(T0);
    await runInDurableObject(cacheStub(), (i: CacheDurableObject) => {
      i.sync.kv = { put: async () => { throw new Error("KV is down"); }, list: async () => ({ keys: [], list_complete: true }) } as unknown as KVNamespace;
    });
    await put("a", 1);
    let t = T0;
    const delays: number[] = [];
    for (let attempt = 0; attempt < 10; attempt++) {
      t += 600_000; // well past any retry time and the flush interval
      await setClock(t);
      expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
      delays.push((await stats()).kv.nextAttemptAt - t);
    }
    expect(delays).toEqual([2, 4, 8, 16, 32, 64, 128, 256, 300, 300].map((s) => s * 1000));
    // The alarm is set for the retry, not earlier.
    const alarm = await runInDurableObject(cacheStub(), (_: CacheDurableObject, state) => state.storage.getAlarm());
    expect(alarm).toBe(t + 300_000);
  });

  it("gives up on a KV call after 15 s (reported in /metadata) and counts it as a failure", async () => {
    expect((await metadata()).config.kvTimeoutMs).toBe(15_000);
  });
});

describe("damaged or missing snapshots are owed a flush", () => {
  it("a torn snapshot marks KV owed, and the next alarm replaces it", async () => {
    await put("good", 1);
    await postJson("/api/v1/cache/flush", {}); // KV was in sync before something tore it
    const snap = await writeKvSnapshot(999, { evil: 1 });
    snap.entries[0]![1].value = 2;
    await env.CACHE_DO_KV.put(ENTRIES_KEY, JSON.stringify(snap));
    await abortAllDurableObjects();
    expect((await stats()).kv.pendingSince).not.toBeNull();
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    expect((await readKvJson(ENTRIES_KEY)).entries.map((e: [string]) => e[0])).toEqual(["good"]);
  });

  it("a snapshot missing from KV while the DO has data is owed too", async () => {
    await put("good", 1);
    await postJson("/api/v1/cache/flush", {});
    await env.CACHE_DO_KV.delete(ENTRIES_KEY);
    await abortAllDurableObjects();
    expect((await metadata()).load.kvSnapshot.status).toBe("absent");
    expect((await stats()).kv.pendingSince).not.toBeNull();
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    expect((await readKvJson(ENTRIES_KEY)).entries.map((e: [string]) => e[0])).toEqual(["good"]);
  });
});
