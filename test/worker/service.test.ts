import { createExecutionContext, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { ENTRIES_KEY, MAX_VALUE_BYTES, type ServiceGetOrSet } from "../../protocol/index.js";
import { LoaderTimeoutError, createCacheClient, type CacheServiceBinding } from "../../client/index.js";
import type { CacheDurableObject } from "../../worker/cache/cache-do.js";
import type { Env } from "../../worker/env.js";
import { CacheService } from "../../worker/service.js";
import { apiJson, cacheStub, entryPath, fakeClock, freshState, futureMidnight, postJson } from "./helpers.js";
import { readKvJson, writeKvSnapshot } from "./kv-fixtures.js";

beforeEach(freshState);

/** The CacheService entrypoint through the Worker's own service binding (ctx.exports): real RPC, real stubs. */
const service = () => exports.CacheService as unknown as CacheServiceBinding;
const quiet = { log: () => {} };

/** How many callers joined the DO's load in flight for `key` (null: none in flight). */
const joinedCount = (key: string) => runInDurableObject(cacheStub(), (instance: CacheDurableObject) => instance.readThrough.joinedCount(key));

/** Timers that keep "never settling" loaders pending; cleared after each test. */
const held: Array<ReturnType<typeof setTimeout>> = [];
afterEach(() => {
  for (const timer of held.splice(0)) clearTimeout(timer);
});

/**
 * A loader that does not settle for the rest of the test, and a promise that resolves once it has been called
 * (the slot is taken). It waits on a pending 10-minute timer, as a loader stuck on I/O would: a bare
 * `new Promise(() => {})` has nothing pending, and workerd cancels such a call as hung after a while.
 */
function neverSettles() {
  let calls = 0;
  let called!: () => void;
  const started = new Promise<void>((r) => (called = r));
  const loader = () => {
    calls++;
    called();
    return new Promise<never>((_, reject) => held.push(setTimeout(() => reject(new Error("held for 10 minutes")), 600_000)));
  };
  return { loader, started, calls: () => calls };
}

/** A CACHE_DO binding whose every call fails, as when the DO is overloaded, resetting or unreachable. */
const unreachableDo = {
  idFromName: () => ({}),
  get: () =>
    new Proxy(
      {},
      {
        get: () => async () => {
          throw new Error("Durable Object is overloaded. Requests queued for too long.");
        },
      },
    ),
} as unknown as Env["CACHE_DO"];

/** Writes a snapshot whose digest no longer matches its entries (torn: a value changed after the digest). */
async function writeTornSnapshot(values: Record<string, unknown>): Promise<void> {
  const snap = await writeKvSnapshot(3, values);
  snap.entries[0]![1].value = { torn: true };
  await env.CACHE_DO_KV.put(ENTRIES_KEY, JSON.stringify(snap));
}

/** A tftcache Worker that cannot be reached at all: every call on the binding throws. */
const down = new Proxy({}, { get: () => async () => { throw new Error("Network connection lost."); } }) as CacheServiceBinding;

const flagOffService = (extra: Partial<Env> = {}) => new CacheService(createExecutionContext(), { ...env, FEATURE_FLAG_DO_CACHE: "false", ...extra });

describe("CacheService over a service binding", () => {
  it("getMany answers at most 1,000 keys per call, saying why; the client splits a larger batch and gets every key", async () => {
    await postJson("/api/v1/cache/seed", { entries: [{ key: "k0", value: 0 }, { key: "k1500", value: 1500 }, { key: "__proto__", value: "p" }] });
    const keys = [...Array.from({ length: 2_500 }, (_, i) => `k${i}`), "__proto__"];
    const direct = await service().getMany(keys);
    expect(direct.k0).toMatchObject({ found: false, fallbackReason: expect.stringMatching(/at most 1000 keys per call \(got 2501\)/) });
    const got = await createCacheClient(service(), quiet).getMany(keys);
    expect([...got.entries()]).toEqual([["k0", 0], ["k1500", 1500], ["__proto__", "p"]]);
  });

  it("set/get/getMany/delete round-trip, and what the client sets is what the admin API and KV show", async () => {
    const client = createCacheClient(service(), quiet);
    expect(await client.set("quote:AAPL", { bid: 190.1, ask: 190.2 }, { ttlSeconds: 60 })).toBe(true);
    expect(await client.get("quote:AAPL")).toEqual({ ask: 190.2, bid: 190.1 });
    expect(await client.get("quote:NONE")).toBeUndefined();
    const many = await client.getMany(["quote:AAPL", "quote:NONE"]);
    expect([...many.keys()]).toEqual(["quote:AAPL"]);
    expect(client.stats()).toMatchObject({ hits: 2, misses: 2, fallbacks: 0, errors: 0 });
    expect((await apiJson(entryPath("quote:AAPL"))).body.data.value).toEqual({ bid: 190.1, ask: 190.2 });
    await postJson("/api/v1/cache/flush", {});
    expect((await readKvJson(ENTRIES_KEY)).entries[0][0]).toBe("quote:AAPL");
    expect(await client.delete("quote:AAPL")).toBe(true);
    expect(await client.get("quote:AAPL")).toBeUndefined();
  });

  it("reports invalid input as a failed write, not an exception", async () => {
    const client = createCacheClient(service(), quiet);
    expect(await client.set("", 1)).toBe(false);
    expect(await client.set("k", 1, { ttlSeconds: -1 })).toBe(false);
    expect(await client.set("big", "x".repeat(1024 * 1024 + 1))).toBe(false);
  });

  it("50 concurrent misses on one key run the loader exactly once", async () => {
    let loads = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const loader = async () => {
      loads++;
      await gate;
      return { px: 101.25, load: loads };
    };
    const pending = Promise.all(Array.from({ length: 50 }, () => service().getOrSet("quote:MSFT", loader, { ttlSeconds: 60 })));
    // The load finishes only once the other 49 have joined it, however slowly they arrive.
    await vi.waitFor(async () => expect(await joinedCount("quote:MSFT")).toBe(49), { timeout: 20_000, interval: 10 });
    release();
    const results = await pending;
    expect(loads).toBe(1);
    expect(results.every((r) => r.ok && (r.value as { px: number }).px === 101.25)).toBe(true);
    expect(results.filter((r) => r.state === "loaded")).toHaveLength(1);
    expect(results.filter((r) => r.state === "joined")).toHaveLength(49);
    const again = await service().getOrSet("quote:MSFT", loader, { ttlSeconds: 60 });
    expect(again.state).toBe("hit");
    expect(loads).toBe(1);
  });

  it("a failing loader caches nothing and its error reaches every joined caller", async () => {
    let loads = 0;
    const loader = async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 20));
      throw new Error("market data API answered 503");
    };
    const client = createCacheClient(service(), quiet);
    const outcomes = await Promise.allSettled(Array.from({ length: 5 }, () => client.getOrSet("quote:ERR", loader)));
    expect(loads).toBe(1);
    for (const o of outcomes) expect(o.status === "rejected" && String(o.reason)).toMatch(/503/);
    expect(await client.get("quote:ERR")).toBeUndefined();
  });

  it("stale-while-revalidate serves the old value once expired and refreshes it in the background", async () => {
    const t0 = futureMidnight();
    const setClock = await fakeClock(t0);
    let version = 0;
    const loader = async () => ({ px: 100 + ++version });
    const pending: Promise<unknown>[] = [];
    const client = createCacheClient(service(), { ...quiet, ctx: { waitUntil: (p) => pending.push(p) } });
    const opts = { ttlSeconds: 10, staleWhileRevalidateSeconds: 60 };
    expect(await client.getOrSet("quote:EURUSD", loader, opts)).toEqual({ px: 101 });
    await setClock(t0 + 15_000); // past the TTL, inside the stale window
    expect(await client.getOrSet("quote:EURUSD", loader, opts)).toEqual({ px: 101 });
    expect(client.stats()).toMatchObject({ stale: 1 });
    expect(pending).toHaveLength(1);
    await Promise.all(pending);
    expect(version).toBe(2);
    expect(await client.getOrSet("quote:EURUSD", loader, opts)).toEqual({ px: 102 });
    expect(version).toBe(2);
    await setClock(t0 + 15_000 + 10_000 + 61_000); // past the stale window too: a plain miss
    expect(await client.getOrSet("quote:EURUSD", loader, opts)).toEqual({ px: 103 });
  });
});

describe("fallbacks: never an exception into the application", () => {
  it("FEATURE_FLAG_DO_CACHE=false reads the KV snapshot, read-only", async () => {
    await writeKvSnapshot(3, { "quote:AAPL": { bid: 1 } });
    const flagOff = new CacheService(createExecutionContext(), { ...env, FEATURE_FLAG_DO_CACHE: "false" });
    const read = await flagOff.get("quote:AAPL");
    expect(read).toMatchObject({ found: true, value: { bid: 1 }, source: "kv", fallbackReason: "FEATURE_FLAG_DO_CACHE is false" });
    expect(await flagOff.set("k", 1)).toMatchObject({ ok: false });
    let loads = 0;
    const miss = await flagOff.getOrSet("quote:NEW", () => ++loads);
    expect(miss).toMatchObject({ ok: true, value: 1, state: "uncached", source: "loader" });
    const client = createCacheClient(flagOff as unknown as CacheServiceBinding, quiet);
    expect(await client.get("quote:AAPL")).toEqual({ bid: 1 });
    expect(client.stats()).toMatchObject({ hits: 1, fallbacks: 1 });
  });

  it("an unreachable tftcache falls back to the KV snapshot, then to a miss", async () => {
    await writeKvSnapshot(3, { "quote:AAPL": { bid: 2 } });
    const down = new Proxy({}, { get: () => async () => { throw new Error("Network connection lost."); } }) as CacheServiceBinding;
    const withKv = createCacheClient(down, { ...quiet, kv: env.CACHE_DO_KV });
    expect(await withKv.get("quote:AAPL")).toEqual({ bid: 2 });
    expect(await withKv.getOrSet("quote:AAPL", () => ({ bid: 999 }))).toEqual({ bid: 2 });
    expect(withKv.stats()).toMatchObject({ fallbacks: 2, errors: 2 });
    const noKv = createCacheClient(down, quiet);
    expect(await noKv.get("quote:AAPL")).toBeUndefined();
    expect(await noKv.set("k", 1)).toBe(false);
    expect(await noKv.getOrSet("quote:X", () => "from-loader")).toBe("from-loader");
    const unbound = createCacheClient(undefined, quiet);
    expect(await unbound.get("k")).toBeUndefined();
  });

  it("answers a getMany fallback from one read of the snapshot, not one per key", async () => {
    await writeKvSnapshot(3, { a: 1, b: 2, c: 3 });
    let gets = 0;
    const countingKv = { get: (key: string, type: "text") => (gets++, env.CACHE_DO_KV.get(key, type)) } as unknown as KVNamespace;
    const down = new Proxy({}, { get: () => async () => { throw new Error("down"); } }) as CacheServiceBinding;
    const client = createCacheClient(down, { ...quiet, kv: countingKv });
    expect([...(await client.getMany(["a", "b", "c", "zz"])).entries()]).toEqual([["a", 1], ["b", 2], ["c", 3]]);
    expect(gets).toBe(1);
    expect(client.stats()).toMatchObject({ hits: 3, misses: 1, fallbacks: 4 });
    gets = 0;
    const flagOff = new CacheService(createExecutionContext(), { ...env, CACHE_DO_KV: countingKv, FEATURE_FLAG_DO_CACHE: "false" });
    const many = await flagOff.getMany(["a", "b", "zz"]);
    expect([many.a!.value, many.b!.value, many.zz!.found]).toEqual([1, 2, false]);
    expect(gets).toBe(1);
  });

  it("logs hits, misses and fallbacks as one-line JSON with the DUAL_CACHE_DO tag", async () => {
    const lines: string[] = [];
    const down = new Proxy({}, { get: () => async () => { throw new Error("down"); } }) as CacheServiceBinding;
    const client = createCacheClient(down, { log: (l) => lines.push(l) });
    await client.get("k");
    const events = lines.map((l) => JSON.parse(l));
    expect(events.every((e) => e.tag === "DUAL_CACHE_DO")).toBe(true);
    expect(events.map((e) => e.event)).toEqual(["fallback", "miss"]);
  });
});

describe("keys named like Object.prototype members (issue 11 item 4)", () => {
  const ODD = ["__proto__", "constructor", "toString", "hasOwnProperty", "valueOf"];
  // Object.fromEntries makes each an own property; an object literal would set the prototype for "__proto__".
  const oddValues = () => Object.fromEntries([["quote:AAPL", { bid: 1 }], ...ODD.map((key, i) => [key, { i }])]);

  it("round-trip through set, get, getMany and delete like any key", async () => {
    const client = createCacheClient(service(), quiet);
    expect(await client.set("quote:AAPL", { bid: 1 }, { ttlSeconds: 60 })).toBe(true);
    for (const [i, key] of ODD.entries()) expect(await client.set(key, { i }, { ttlSeconds: 60 })).toBe(true);
    for (const [i, key] of ODD.entries()) expect(await client.get(key)).toEqual({ i });
    const many = await client.getMany(["quote:AAPL", ...ODD, "quote:NONE"]);
    expect([...many]).toEqual([["quote:AAPL", { bid: 1 }], ...ODD.map((key, i) => [key, { i }])]);
    // What another Worker gets from the binding itself: one own property per key, on an ordinary object.
    const raw = await service().getMany(["quote:AAPL", "__proto__", "constructor"]);
    expect(Object.keys(raw)).toEqual(["quote:AAPL", "__proto__", "constructor"]);
    expect(Object.getOwnPropertyDescriptor(raw, "__proto__")?.value).toMatchObject({ found: true, value: { i: 0 }, source: "do" });
    expect(Object.getPrototypeOf(raw)).toBe(Object.prototype);
    expect(client.stats()).toMatchObject({ hits: 11, misses: 1, errors: 0, fallbacks: 0 });
    for (const key of ODD) expect(await client.delete(key)).toBe(true);
    expect(await client.get("__proto__")).toBeUndefined();
    // Absent, they are a miss each, not a failed batch.
    expect([...(await client.getMany(["quote:AAPL", ...ODD])).keys()]).toEqual(["quote:AAPL"]);
    expect(client.stats()).toMatchObject({ errors: 0, fallbacks: 0 });
  });

  it("are answered from the KV snapshot by the service's fallback and the client's", async () => {
    await writeKvSnapshot(3, oddValues());
    const flagOff = flagOffService();
    expect(await flagOff.get("__proto__")).toMatchObject({ found: true, value: { i: 0 }, source: "kv" });
    const many = await flagOff.getMany(["__proto__", "constructor", "toString", "quote:NONE"]);
    expect(Object.keys(many)).toEqual(["__proto__", "constructor", "toString", "quote:NONE"]);
    expect(Object.getOwnPropertyDescriptor(many, "__proto__")?.value).toMatchObject({ found: true, value: { i: 0 }, source: "kv" });
    expect(Object.getOwnPropertyDescriptor(many, "toString")?.value).toMatchObject({ found: true, value: { i: 2 }, source: "kv" });
    expect(await flagOff.getOrSet("constructor", () => "loader ran")).toMatchObject({ ok: true, value: { i: 1 }, source: "kv" });

    const fallback = createCacheClient(down, { ...quiet, kv: env.CACHE_DO_KV });
    expect(await fallback.get("__proto__")).toEqual({ i: 0 });
    expect([...(await fallback.getMany(["__proto__", "hasOwnProperty", "quote:NONE"]))]).toEqual([["__proto__", { i: 0 }], ["hasOwnProperty", { i: 3 }]]);
    const viaService = createCacheClient(flagOff as unknown as CacheServiceBinding, quiet);
    expect([...(await viaService.getMany(["valueOf", "__proto__", "quote:NONE"]))]).toEqual([["valueOf", { i: 4 }], ["__proto__", { i: 0 }]]);
  });
});

describe("values JSON cannot represent (issue 11 item 4)", () => {
  it("a Date is stored as its ISO string (toJSON), as JSON.stringify would, by set and by getOrSet", async () => {
    const client = createCacheClient(service(), quiet);
    expect(await client.set("d", { at: new Date(0) })).toBe(true);
    expect(await client.get("d")).toEqual({ at: "1970-01-01T00:00:00.000Z" });
    expect(await service().getOrSet("d2", () => ({ at: new Date(0) }))).toMatchObject({ ok: true, state: "loaded", value: { at: "1970-01-01T00:00:00.000Z" } });
    expect((await apiJson(entryPath("d2"))).body.data.value).toEqual({ at: "1970-01-01T00:00:00.000Z" });
  });

  it("a Map, Set, BigInt, NaN, Infinity or too deep a value is refused with the reason: never stored changed, never thrown", async () => {
    let deep: unknown = 1;
    for (let i = 0; i < 150; i++) deep = [deep];
    const cases: Array<[unknown, RegExp]> = [
      [new Map([["a", 1]]), /Map/],
      [{ s: new Set([1]) }, /Set/],
      [{ n: 10n }, /BigInt/],
      [{ x: NaN }, /NaN/],
      [[Infinity], /Infinity/],
      [deep, /nested deeper/],
    ];
    for (const [value, reason] of cases) {
      const set = await service().set("bad", value);
      expect(set).toMatchObject({ ok: false, error: expect.stringMatching(reason) });
      for (const op of ["getOrSet", "refresh"] as const) {
        expect(await service()[op]("bad", () => value)).toMatchObject({ ok: false, source: "do", code: "not_cacheable", error: expect.stringMatching(reason) });
      }
      expect((await service().get("bad")).found).toBe(false);
    }
  });
});

describe("the client's getOrSet never throws for a cache problem (issue 11 item 5)", () => {
  it("returns the loaded value uncached, counted as an error and logged: a value over 1 MiB, a 600-byte key, ttlSeconds -1, a bad loadTimeoutMs, a Map", async () => {
    const lines: string[] = [];
    const client = createCacheClient(service(), { log: (l) => lines.push(l) });
    const cases: Array<{ key: string; value: unknown; opts: object; reason: RegExp }> = [
      { key: "big", value: "x".repeat(MAX_VALUE_BYTES + 1), opts: {}, reason: /larger than/ },
      { key: "k".repeat(600), value: { px: 1 }, opts: {}, reason: /longer than 512 bytes/ },
      { key: "ttl", value: { px: 2 }, opts: { ttlSeconds: -1 }, reason: /ttlSeconds/ },
      { key: "timeout", value: { px: 3 }, opts: { loadTimeoutMs: 0 }, reason: /loadTimeoutMs/ },
      // Infinity would hold the key's single-flight slot forever: loadTimeoutMs is bounded (120,000).
      { key: "timeout-inf", value: { px: 4 }, opts: { loadTimeoutMs: Infinity }, reason: /loadTimeoutMs/ },
      { key: "map", value: new Map([["a", 1]]), opts: {}, reason: /Map/ },
    ];
    for (const [n, c] of cases.entries()) {
      let calls = 0;
      const got = await client.getOrSet(c.key, () => (calls++, c.value), c.opts);
      expect(got).toEqual(c.value);
      expect(calls).toBe(1);
      expect(client.stats()).toMatchObject({ errors: n + 1, loads: n + 1 });
      expect((await service().get(c.key)).found).toBe(false);
    }
    const failures = lines.map((l) => JSON.parse(l)).filter((e) => e.event === "getorset_failed");
    expect(failures.map((e) => e.key)).toEqual(cases.map((c) => c.key));
    failures.forEach((e, i) => expect(e.error).toMatch(cases[i]!.reason));
  });

  it("only the caller's own loader error reaches it, as the very error the loader threw", async () => {
    class VendorError extends Error {}
    const client = createCacheClient(service(), quiet);
    const thrown = new VendorError("market data API answered 429");
    await expect(client.getOrSet("quote:ERR", () => Promise.reject(thrown))).rejects.toBe(thrown);
    expect(client.stats().errors).toBe(0);
  });
});

describe("a loader that never settles (issue 11 item 5)", () => {
  it("holds its key for loadTimeoutMs at most: every waiter gets loader_timeout, then the next call runs a fresh load", async () => {
    const first = neverSettles();
    const a = service().getOrSet("slow", first.loader, { loadTimeoutMs: 200 });
    await first.started; // the slot is taken
    const b = service().getOrSet("slow", neverSettles().loader, { loadTimeoutMs: 200 });
    const [ra, rb] = await Promise.all([a, b]);
    for (const r of [ra, rb]) expect(r).toMatchObject<Partial<ServiceGetOrSet>>({ ok: false, source: "do", code: "loader_timeout" });
    expect(ra.error).toMatch(/did not settle within 200 ms/);
    expect(await joinedCount("slow")).toBeNull();
    let loads = 0;
    expect(await service().getOrSet("slow", () => ({ px: ++loads }), { loadTimeoutMs: 200 })).toMatchObject({ ok: true, state: "loaded", value: { px: 1 } });
    expect(first.calls()).toBe(1);
    expect(loads).toBe(1);
  });

  it("the client rejects with LoaderTimeoutError (the loader's problem, not the cache's) and the next call loads", async () => {
    const client = createCacheClient(service(), quiet);
    const first = neverSettles();
    const a = client.getOrSet("slow", first.loader, { loadTimeoutMs: 200 });
    await first.started;
    // b joins a's load with a longer limit of its own: the load's limit (a's) is what b is told.
    const b = client.getOrSet("slow", neverSettles().loader, { loadTimeoutMs: 120_000 });
    const outcomes = await Promise.allSettled([a, b]);
    for (const o of outcomes) expect(o.status === "rejected" && o.reason).toBeInstanceOf(LoaderTimeoutError);
    for (const o of outcomes) expect(o.status === "rejected" && (o.reason as LoaderTimeoutError).timeoutMs).toBe(200);
    expect(await client.getOrSet("slow", () => ({ px: 1 }), { loadTimeoutMs: 200 })).toEqual({ px: 1 });
    expect(client.stats().errors).toBe(0);
  });

  it("bounds the uncached load too: tftcache unreachable (client) or bypassed (service)", async () => {
    const client = createCacheClient(down, quiet);
    await expect(client.getOrSet("slow", neverSettles().loader, { loadTimeoutMs: 50 })).rejects.toBeInstanceOf(LoaderTimeoutError);
    expect(await flagOffService().getOrSet("slow", neverSettles().loader, { loadTimeoutMs: 50 })).toMatchObject({ ok: false, source: "loader", code: "loader_timeout" });
  });
});

describe("KV fallbacks answer from the snapshot, never from a torn one (issue 11 item 8)", () => {
  it("with the DO unreachable, CacheService answers get, getMany and getOrSet from the KV snapshot (source kv)", async () => {
    await writeKvSnapshot(3, { "quote:AAPL": { bid: 3 }, "quote:MSFT": { bid: 4 } });
    const svc = new CacheService(createExecutionContext(), { ...env, CACHE_DO: unreachableDo });
    const reason = expect.stringMatching(/^DO unreachable: Durable Object is overloaded/);
    expect(await svc.get("quote:AAPL")).toMatchObject({ found: true, value: { bid: 3 }, source: "kv", fallbackReason: reason });
    const many = await svc.getMany(["quote:AAPL", "quote:MSFT", "quote:NONE"]);
    expect(many["quote:AAPL"]).toMatchObject({ found: true, value: { bid: 3 }, source: "kv", fallbackReason: reason });
    expect(many["quote:MSFT"]).toMatchObject({ found: true, value: { bid: 4 }, source: "kv" });
    expect(many["quote:NONE"]).toMatchObject({ found: false, source: "kv" });
    let loads = 0;
    expect(await svc.getOrSet("quote:MSFT", () => ++loads)).toMatchObject({ ok: true, value: { bid: 4 }, state: "hit", source: "kv" });
    expect(await svc.getOrSet("quote:NEW", () => ++loads)).toMatchObject({ ok: true, value: 1, state: "uncached", source: "loader" });
    expect(loads).toBe(1);
    expect(await svc.set("k", 1)).toMatchObject({ ok: false, error: reason });
    expect(await svc.delete("quote:AAPL")).toMatchObject({ ok: false, deleted: false, error: reason });
    // Through the client: the service absorbed the problem, so it is a fallback, not an error.
    const client = createCacheClient(svc as unknown as CacheServiceBinding, quiet);
    expect(await client.get("quote:AAPL")).toEqual({ bid: 3 });
    expect(await client.getOrSet("quote:MSFT", () => "loader ran")).toEqual({ bid: 4 });
    expect(client.stats()).toMatchObject({ hits: 2, fallbacks: 2, errors: 0 });
  });

  it("flag off: getOrSet serves a KV hit without calling the loader", async () => {
    await writeKvSnapshot(3, { "quote:AAPL": { bid: 6 } });
    let loads = 0;
    expect(await flagOffService().getOrSet("quote:AAPL", () => ++loads)).toMatchObject({ ok: true, value: { bid: 6 }, state: "hit", source: "kv" });
    expect(loads).toBe(0);
  });

  it("a client with no binding reads the KV snapshot directly, counted as fallbacks", async () => {
    await writeKvSnapshot(3, { a: 1, b: 2 });
    const client = createCacheClient(undefined, { ...quiet, kv: env.CACHE_DO_KV });
    expect(await client.get("a")).toBe(1);
    expect([...(await client.getMany(["a", "b", "zz"]))]).toEqual([["a", 1], ["b", 2]]);
    let loads = 0;
    expect(await client.getOrSet("b", () => ++loads)).toBe(2);
    expect(await client.getOrSet("new", () => ++loads)).toBe(1);
    expect(loads).toBe(1);
    expect(client.stats()).toMatchObject({ hits: 4, misses: 2, fallbacks: 6, loads: 1, errors: 0 });
  });

  it("a torn snapshot (digest does not match its entries) is never served: a miss, and the loader runs", async () => {
    await writeTornSnapshot({ "quote:AAPL": { bid: 5 } });
    const flagOff = flagOffService();
    expect(await flagOff.get("quote:AAPL")).toMatchObject({ found: false, source: "none", fallbackReason: expect.stringMatching(/digest mismatch/) });
    expect(await flagOff.getMany(["quote:AAPL"])).toMatchObject({ "quote:AAPL": { found: false, source: "none" } });
    expect(await flagOff.getOrSet("quote:AAPL", () => ({ bid: 7 }))).toMatchObject({ ok: true, value: { bid: 7 }, source: "loader" });
    const client = createCacheClient(down, { ...quiet, kv: env.CACHE_DO_KV });
    expect(await client.get("quote:AAPL")).toBeUndefined();
    expect(await client.getMany(["quote:AAPL"])).toEqual(new Map());
    expect(client.stats()).toMatchObject({ misses: 2, fallbacks: 2 });
  });
});
