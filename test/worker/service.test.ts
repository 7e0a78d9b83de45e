import { createExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { ENTRIES_KEY } from "../../protocol/index.js";
import { createCacheClient, type CacheServiceBinding } from "../../client/index.js";
import { CacheService } from "../../worker/service.js";
import { apiJson, entryPath, fakeClock, freshState, postJson } from "./helpers.js";
import { readKvJson, writeKvSnapshot } from "./kv-fixtures.js";

beforeEach(freshState);

/** The CacheService entrypoint through the Worker's own service binding (ctx.exports): real RPC, real stubs. */
const service = () => exports.CacheService as unknown as CacheServiceBinding;
const quiet = { log: () => {} };

describe("CacheService over a service binding", () => {
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
    const loader = async () => {
      loads++;
      await new Promise((r) => setTimeout(r, 50));
      return { px: 101.25, load: loads };
    };
    const results = await Promise.all(Array.from({ length: 50 }, () => service().getOrSet("quote:MSFT", loader, { ttlSeconds: 60 })));
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
    const t0 = Date.UTC(2026, 10, 25, 14);
    await apiJson("/api/v1/cache/stats");
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
