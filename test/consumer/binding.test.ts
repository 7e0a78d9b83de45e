import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { LoaderTimeoutError, createCacheClient, type CacheServiceBinding } from "../../client/index.js";
import { ENTRIES_KEY, digestEntries, type SnapshotEntry } from "../../protocol/index.js";

/**
 * The CacheService entrypoint as another Worker's service binding sees it (this test Worker is that other
 * Worker): arguments, answers and loader call-backs all cross a real Worker boundary, serialised.
 */
const bindings = env as unknown as { TFTCACHE: CacheServiceBinding; TFTCACHE_KV_ONLY: CacheServiceBinding; KV_ONLY_KV: KVNamespace };
const quiet = { log: () => {} };
const ODD = ["__proto__", "constructor", "toString", "hasOwnProperty"];
const own = (record: object, key: string) => Object.getOwnPropertyDescriptor(record, key)?.value;

describe("CacheService across a Worker boundary", () => {
  it("keys like __proto__ round-trip through set, get, getMany and delete; a batch with them is not a DataCloneError", async () => {
    const cache = bindings.TFTCACHE;
    expect(await cache.set("quote:AAPL", { bid: 190 }, { ttlSeconds: 300 })).toEqual({ ok: true });
    // Absent first: the batch used to fail whole ({}["__proto__"] = null changed the record's prototype).
    const before = await cache.getMany(["quote:AAPL", ...ODD]);
    expect(Object.keys(before)).toEqual(["quote:AAPL", ...ODD]);
    for (const key of ODD) expect(own(before, key)).toMatchObject({ found: false, source: "do" });
    for (const [i, key] of ODD.entries()) expect(await cache.set(key, { i }, { ttlSeconds: 300 })).toEqual({ ok: true });
    for (const [i, key] of ODD.entries()) expect(await cache.get(key)).toMatchObject({ found: true, value: { i }, source: "do" });
    const after = await cache.getMany(["quote:AAPL", ...ODD]);
    expect(own(after, "quote:AAPL")).toMatchObject({ found: true, value: { bid: 190 } });
    for (const [i, key] of ODD.entries()) expect(own(after, key)).toMatchObject({ found: true, value: { i } });
    const client = createCacheClient(cache, quiet);
    expect([...(await client.getMany(["__proto__", "toString"]))]).toEqual([["__proto__", { i: 0 }], ["toString", { i: 2 }]]);
    expect(client.stats()).toMatchObject({ errors: 0, fallbacks: 0 });
    for (const key of ODD) expect(await cache.delete(key)).toEqual({ ok: true, deleted: true });
  });

  it("a Date is stored as its ISO string; a Map is refused with a reason naming Map (set, getOrSet), never stored", async () => {
    const cache = bindings.TFTCACHE;
    expect(await cache.set("d", { at: new Date(0) })).toEqual({ ok: true });
    expect(await cache.get("d")).toMatchObject({ found: true, value: { at: "1970-01-01T00:00:00.000Z" } });
    const set = await cache.set("m", new Map([["bid", 1]]));
    expect(set.ok).toBe(false);
    expect(set.error).toMatch(/Map/);
    const loaded = await cache.getOrSet("m", () => new Map([["bid", 1]]));
    expect(loaded).toMatchObject({ ok: false, code: "not_cacheable", error: expect.stringMatching(/Map/) });
    expect(await cache.get("m")).toMatchObject({ found: false });
    // The client hands the caller its own value, uncached, and counts the refusal.
    const client = createCacheClient(cache, quiet);
    const map = new Map([["bid", 2]]);
    expect(await client.getOrSet("m", () => map)).toEqual(map);
    expect(client.stats()).toMatchObject({ errors: 1, loads: 1 });
  });

  it("a loader that never settles frees its key after loadTimeoutMs; the next call loads afresh", async () => {
    const client = createCacheClient(bindings.TFTCACHE, quiet);
    // Stuck the way a hung vendor call is: on pending I/O (a 10-minute timer), cleared when the test ends.
    const timers: Array<ReturnType<typeof setTimeout>> = [];
    const stuck = () => new Promise<never>((_, reject) => timers.push(setTimeout(() => reject(new Error("held")), 600_000)));
    let started!: () => void;
    const running = new Promise<void>((r) => (started = r));
    try {
      const first = client.getOrSet("quote:HANG", () => (started(), stuck()), { loadTimeoutMs: 200 });
      await running;
      const second = client.getOrSet("quote:HANG", stuck, { loadTimeoutMs: 200 });
      for (const o of await Promise.allSettled([first, second])) expect(o.status === "rejected" && o.reason).toBeInstanceOf(LoaderTimeoutError);
      let loads = 0;
      expect(await client.getOrSet("quote:HANG", () => ({ bid: ++loads }), { loadTimeoutMs: 200 })).toEqual({ bid: 1 });
      expect(loads).toBe(1);
    } finally {
      for (const timer of timers) clearTimeout(timer);
    }
  });
});

describe("CacheService with FEATURE_FLAG_DO_CACHE=false, across a Worker boundary", () => {
  it("answers get, getMany and getOrSet from the KV snapshot (source kv), __proto__ included", async () => {
    const now = Date.now();
    const entry = (value: unknown): SnapshotEntry => ({ value, expiresAt: now + 3_600_000, lastAccessed: now, cachedAt: now });
    const entries: Array<[string, SnapshotEntry]> = [["__proto__", entry({ i: 0 })], ["quote:AAPL", entry({ bid: 1 })], ["toString", entry({ i: 2 })]];
    await bindings.KV_ONLY_KV.put(ENTRIES_KEY, JSON.stringify({ format: 1, generation: 3, writtenAt: now, digest: await digestEntries(entries), entries }));
    const cache = bindings.TFTCACHE_KV_ONLY;
    expect(await cache.get("quote:AAPL")).toMatchObject({ found: true, value: { bid: 1 }, source: "kv", fallbackReason: "FEATURE_FLAG_DO_CACHE is false" });
    const many = await cache.getMany(["__proto__", "quote:AAPL", "toString", "quote:NONE"]);
    expect(Object.keys(many)).toEqual(["__proto__", "quote:AAPL", "toString", "quote:NONE"]);
    expect(own(many, "__proto__")).toMatchObject({ found: true, value: { i: 0 }, source: "kv" });
    expect(own(many, "toString")).toMatchObject({ found: true, value: { i: 2 }, source: "kv" });
    expect(own(many, "quote:NONE")).toMatchObject({ found: false, source: "kv" });
    let loads = 0;
    expect(await cache.getOrSet("quote:AAPL", () => ++loads)).toMatchObject({ ok: true, value: { bid: 1 }, state: "hit", source: "kv" });
    expect(await cache.getOrSet("quote:NEW", () => ++loads)).toMatchObject({ ok: true, value: 1, state: "uncached", source: "loader" });
    expect(loads).toBe(1);
    expect(await cache.set("k", 1)).toMatchObject({ ok: false });
    const client = createCacheClient(cache, quiet);
    expect(await client.get("__proto__")).toEqual({ i: 0 });
    expect(client.stats()).toMatchObject({ hits: 1, fallbacks: 1, errors: 0 });
  });
});
