import { abortAllDurableObjects, createExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createCacheClient, type CacheServiceBinding } from "../../client/index.js";
import { STALE_IF_ERROR_BACKOFF_MS, maxStalenessProblem } from "../../protocol/index.js";
import { clock } from "../../worker/clock.js";
import type { Env } from "../../worker/env.js";
import { CacheService } from "../../worker/service.js";
import { fakeClock, freshState } from "./helpers.js";
import { writeKvSnapshot } from "./kv-fixtures.js";

/**
 * Issue 15's fresh-clone review, the client and CacheService side: stale-if-error's option validation and
 * maxStalenessMs on the KV paths, stale-while-revalidate without ctx, getOrSetWithInfo, loader stats in the
 * stale-if-error branch, maxStalenessMs: Infinity, and a loader's undefined without negativeTtlSeconds.
 */
beforeEach(freshState);
afterEach(() => vi.restoreAllMocks());

const service = () => exports.CacheService as unknown as CacheServiceBinding;
const down = new Proxy({}, { get: () => async () => { throw new Error("Network connection lost."); } }) as CacheServiceBinding;
const DAY_MS = 86_400_000;

/** A CACHE_DO binding whose every call fails: CacheService's own KV paths. */
const unreachableDo = { idFromName: () => ({}), get: () => new Proxy({}, { get: () => async () => { throw new Error("overloaded"); } }) } as unknown as Env["CACHE_DO"];
const serviceWithoutDo = () => new CacheService(createExecutionContext(), { ...env, CACHE_DO: unreachableDo });

/** Timers that keep hung loaders pending; cleared after each test. */
const held: Array<ReturnType<typeof setTimeout>> = [];
afterEach(() => {
  for (const timer of held.splice(0)) clearTimeout(timer);
});
const hangs = () => new Promise<never>((_, reject) => held.push(setTimeout(() => reject(new Error("held")), 600_000)));

/** The client's clock (Date.now) follows the DO's fake one, so KV ages are exact. */
const clientOnFakeClock = () => vi.spyOn(Date, "now").mockImplementation(() => clock.now());

describe("stale-if-error on the KV paths", () => {
  it("a staleIfErrorSeconds of NaN, Infinity or 1e12 is refused (counted, logged): a KV entry expired 10 days ago is never served, the loader's error stands", async () => {
    clientOnFakeClock();
    await writeKvSnapshot(5, { "quote:OLD": { px: 1 } }, -10 * DAY_MS); // expired 10 days ago
    const fails = () => Promise.reject(new Error("vendor down"));
    for (const bad of [Number.NaN, Number.POSITIVE_INFINITY, 1e12]) {
      for (const binding of [down, undefined]) {
        const lines: string[] = [];
        const client = createCacheClient(binding, { kv: env.CACHE_DO_KV, log: (l) => lines.push(l) });
        await expect(client.getOrSet("quote:OLD", fails, { staleIfErrorSeconds: bad })).rejects.toThrow(/vendor down/);
        expect(client.stats()).toMatchObject({ stale: 0, errors: binding ? 2 : 1, loads: 1, loaderFailures: 1 });
        expect(lines.map((l) => JSON.parse(l)).find((e) => e.event === "getorset_failed")?.error).toMatch(/staleIfErrorSeconds/);
      }
      // CacheService (its DO unreachable) refuses the option before anything is loaded.
      expect(await serviceWithoutDo().getOrSet("quote:OLD", fails, { staleIfErrorSeconds: bad })).toMatchObject({ ok: false, code: "bad_request", error: expect.stringMatching(/staleIfErrorSeconds/) });
    }
    // A valid window does not reach back 10 days either.
    await expect(createCacheClient(down, { log: () => {}, kv: env.CACHE_DO_KV }).getOrSet("quote:OLD", fails, { staleIfErrorSeconds: 3600 })).rejects.toThrow(/vendor down/);
  });

  it("maxStalenessMs is a hard limit there too: a KV value older than it is not served by stale-if-error (client and CacheService)", async () => {
    const setClock = await fakeClock();
    const t0 = clock.now();
    clientOnFakeClock();
    await writeKvSnapshot(6, { "quote:KV": { px: 9 } }, 15_000); // cached at t0, expires at t0 + 15 s
    await setClock(t0 + 20_000); // expired 5 s ago, 20 s old
    const fails = () => Promise.reject(new Error("vendor down"));
    const opts = { staleIfErrorSeconds: 60 };
    const client = createCacheClient(down, { log: () => {}, kv: env.CACHE_DO_KV });
    await expect(client.getOrSet("quote:KV", fails, { ...opts, maxStalenessMs: 10_000 })).rejects.toThrow(/vendor down/);
    expect(await client.getOrSetWithInfo("quote:KV", fails, { ...opts, maxStalenessMs: 30_000 })).toEqual({
      value: { px: 9 }, source: "kv", ageMs: 20_000, stale: true, staleIfError: true, generation: 6, cachedAt: t0,
    });
    expect(client.stats()).toMatchObject({ stale: 1 });
    const svc = serviceWithoutDo();
    expect(await svc.getOrSet("quote:KV", fails, { ...opts, maxStalenessMs: 10_000 })).toMatchObject({ ok: false, code: "loader_failed" });
    expect(await svc.getOrSet("quote:KV", fails, { ...opts, maxStalenessMs: 30_000 })).toMatchObject({ ok: true, state: "stale", staleIfError: true, source: "kv", value: { px: 9 }, ageMs: 20_000, generation: 6 });
  });
});

describe("stale-while-revalidate without ctx", () => {
  it("a soft-purged key is still refreshed (started unawaited): the loader runs and a later getOrSet gets the new value", async () => {
    const svc = service();
    const refreshes: Promise<unknown>[] = [];
    const watched: CacheServiceBinding = {
      get: (k) => svc.get(k),
      getMany: (k) => svc.getMany(k),
      set: (k, v, o) => svc.set(k, v, o),
      delete: (k) => svc.delete(k),
      deletePrefix: (p, o) => svc.deletePrefix(p, o),
      getOrSet: (k, l, o) => svc.getOrSet(k, l, o),
      refresh: (k, l, o) => {
        const p = svc.refresh(k, l, o);
        refreshes.push(p);
        return p;
      },
    };
    const client = createCacheClient(watched, { log: () => {} }); // no ctx
    let loads = 0;
    const loader = () => ({ px: ++loads });
    expect(await client.getOrSet("quote:A", loader, { ttlSeconds: 3600 })).toEqual({ px: 1 });
    expect(await client.deletePrefix("quote:", { mode: "soft" })).toBe(1);
    expect(await client.getOrSet("quote:A", loader, { ttlSeconds: 3600 })).toEqual({ px: 1 }); // the old value, at once
    expect(refreshes).toHaveLength(1);
    await Promise.all(refreshes);
    expect(loads).toBe(2);
    expect(await client.getOrSetWithInfo("quote:A", loader, { ttlSeconds: 3600 })).toMatchObject({ value: { px: 2 }, stale: false, source: "memory" });
    expect(loads).toBe(2);
    expect(client.stats()).toMatchObject({ loads: 2, stale: 1, errors: 0 });
  });
});

describe("getOrSetWithInfo", () => {
  it("says where the value came from: loader, memory, do (SQLite), kv; its age, staleness and generation", async () => {
    const setClock = await fakeClock();
    const t0 = clock.now();
    const client = createCacheClient(service(), { log: () => {} });
    let loads = 0;
    const loader = () => ({ px: ++loads });
    const first = await client.getOrSetWithInfo("quote:I", loader, { ttlSeconds: 10, staleWhileRevalidateSeconds: 60, staleIfErrorSeconds: 300 });
    expect(first).toMatchObject({ value: { px: 1 }, source: "loader", ageMs: 0, stale: false });
    expect(first.staleIfError).toBeUndefined();
    await setClock(t0 + 3_000);
    const hit = await client.getOrSetWithInfo("quote:I", loader);
    expect(hit).toMatchObject({ value: { px: 1 }, source: "memory", ageMs: 3_000, stale: false, cachedAt: t0 });
    expect(hit.generation).toBeGreaterThan(0);
    await abortAllDurableObjects();
    expect(await client.getOrSetWithInfo("quote:I", loader)).toMatchObject({ value: { px: 1 }, source: "do", ageMs: 3_000 });
    // Past the fresh period: stale (a refresh runs in the background).
    await setClock(t0 + 20_000);
    const pending: Promise<unknown>[] = [];
    const withCtx = createCacheClient(service(), { log: () => {}, ctx: { waitUntil: (p) => pending.push(p) } });
    expect(await withCtx.getOrSetWithInfo("quote:I", loader, { ttlSeconds: 10, staleWhileRevalidateSeconds: 60, staleIfErrorSeconds: 300 })).toMatchObject({ value: { px: 1 }, stale: true, ageMs: 20_000 });
    await Promise.all(pending);
    // stale-if-error from the DO: expired, the loader fails.
    await setClock(t0 + 20_000 + 80_000);
    const failing = () => Promise.reject(new Error("vendor down"));
    expect(await client.getOrSetWithInfo("quote:I", failing, { ttlSeconds: 10, staleIfErrorSeconds: 300 })).toMatchObject({ value: { px: 2 }, stale: true, staleIfError: true });
    // The KV snapshot, tftcache unreachable; and the loader when nothing is cached.
    clientOnFakeClock();
    await writeKvSnapshot(9, { "quote:KV": { px: 7 } });
    const viaKv = createCacheClient(down, { log: () => {}, kv: env.CACHE_DO_KV });
    expect(await viaKv.getOrSetWithInfo("quote:KV", loader)).toMatchObject({ value: { px: 7 }, source: "kv", ageMs: 0, stale: false, generation: 9 });
    expect(await viaKv.getOrSetWithInfo("quote:NEW", () => "fresh")).toEqual({ value: "fresh", source: "loader", ageMs: 0, stale: false });
    // getOrSet's errors are getOrSetWithInfo's.
    await expect(viaKv.getOrSetWithInfo("quote:NONE", failing)).rejects.toThrow(/vendor down/);
  });
});

describe("client stats in the stale-if-error branch", () => {
  it("a throwing and a hung loader answered with the expired value count as loads, loader time and failures", async () => {
    const setClock = await fakeClock();
    const t0 = clock.now();
    const opts = { ttlSeconds: 10, staleIfErrorSeconds: 60 };
    await service().getOrSet("quote:S", () => ({ px: 1 }), opts);
    await setClock(t0 + 15_000);
    const client = createCacheClient(service(), { log: () => {} });
    expect(await client.getOrSet("quote:S", () => Promise.reject(new Error("vendor 503")), opts)).toEqual({ px: 1 });
    expect(client.stats()).toMatchObject({ stale: 1, loads: 1, loaderFailures: 1, errors: 0 });
    await setClock(t0 + 15_000 + STALE_IF_ERROR_BACKOFF_MS.first); // the backoff has passed: the loader is called again
    expect(await client.getOrSet("quote:S", hangs, { ...opts, loadTimeoutMs: 100 })).toEqual({ px: 1 });
    const s = client.stats();
    expect(s).toMatchObject({ stale: 2, loads: 2, loaderFailures: 2 });
    expect(s.loaderMaxMs).toBeGreaterThan(0); // the hung call's time until the answer (it waited for a 100 ms timer)
  });
});

describe("maxStalenessMs: Infinity means no limit", () => {
  it("is accepted by the shared validation, so the DO caches and the client counts no error; NaN and -Infinity are still refused", async () => {
    expect(maxStalenessProblem(Number.POSITIVE_INFINITY)).toBeNull();
    expect(maxStalenessProblem(Number.NaN)).toMatch(/maxStalenessMs/);
    expect(maxStalenessProblem(Number.NEGATIVE_INFINITY)).toMatch(/maxStalenessMs/);
    expect(await service().getOrSet("inf", () => 1, { maxStalenessMs: Infinity })).toMatchObject({ ok: true, state: "loaded" });
    const client = createCacheClient(service(), { log: () => {} });
    let loads = 0;
    expect(await client.getOrSet("inf", () => ++loads, { maxStalenessMs: Infinity })).toBe(1);
    expect(await client.get("inf", { maxStalenessMs: Infinity })).toBe(1);
    expect(loads).toBe(0);
    expect(client.stats()).toMatchObject({ errors: 0, hits: 2 });
  });
});

describe("a loader's undefined without negativeTtlSeconds", () => {
  it("is a load, not an error: no getorset_failed, nothing on console.warn", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    const client = createCacheClient(service()); // no log option: failures would go to console.warn
    let calls = 0;
    const lookup = () => (calls++, undefined);
    for (let i = 0; i < 3; i++) expect(await client.getOrSet("sym:NONE", lookup)).toBeUndefined();
    expect(calls).toBe(3);
    expect(client.stats()).toMatchObject({ errors: 0, loads: 3, misses: 3 });
    expect(warn).not.toHaveBeenCalled();
  });
});
