import { abortAllDurableObjects, createExecutionContext, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { createCacheClient, type CacheServiceBinding } from "../../client/index.js";
import { ENTRIES_KEY, STALE_IF_ERROR_BACKOFF_MS, type ServiceGetOrSet } from "../../protocol/index.js";
import type { CacheDurableObject } from "../../worker/cache/cache-do.js";
import { clock } from "../../worker/clock.js";
import type { Env } from "../../worker/env.js";
import { CacheService } from "../../worker/service.js";
import { apiJson, cacheStub, entryPath, fakeClock, freshState, futureNoon, postJson } from "./helpers.js";
import { writeKvSnapshot } from "./kv-fixtures.js";

/**
 * Issue 15 (part B): stale-if-error, negative caching and TTL jitter, through the Worker's own CacheService
 * binding (real RPC: the loader is called back across it). Time is the DO's fake clock (worker/clock.ts).
 */
beforeEach(freshState);

const service = () => exports.CacheService as unknown as CacheServiceBinding;
const quiet = { log: () => {} };
const realRandom = clock.random;
afterEach(() => {
  clock.random = realRandom;
});

/** Timers that keep "never settling" loaders pending; cleared after each test. */
const held: Array<ReturnType<typeof setTimeout>> = [];
afterEach(() => {
  for (const timer of held.splice(0)) clearTimeout(timer);
});

/** A loader that answers `value`, or throws while `failing` is set; counts its calls. */
function vendor<T>(value: () => T) {
  const state = { calls: 0, failing: false };
  const loader = async () => {
    state.calls++;
    if (state.failing) throw new Error("market data API answered 503");
    return value();
  };
  return { loader, state };
}

const rowCount = () =>
  runInDurableObject(cacheStub(), (_: CacheDurableObject, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM entries").one().n);
const snapshotKeys = async () => (await apiJson("/api/v1/cache/snapshot")).body.data.entries.map((e: [string]) => e[0]);
/** The snapshot's keys live at `now` (what every reader of it serves): a kept row is in it, already expired. */
const liveSnapshotKeys = async (now: number) =>
  (await apiJson("/api/v1/cache/snapshot")).body.data.entries.filter((e: [string, { expiresAt: number }]) => e[1].expiresAt > now).map((e: [string]) => e[0]);

describe("stale-if-error (getOrSet staleIfErrorSeconds)", () => {
  const opts = { ttlSeconds: 10, staleIfErrorSeconds: 60 };

  it("a failing loader gets the expired value within the window, flagged; a plain get, the listing and stats do not see it, the snapshot holds it expired", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    let px = 100;
    const v = vendor(() => ({ px: ++px }));
    expect(await service().getOrSet("quote:AAPL", v.loader, opts)).toMatchObject({ ok: true, state: "loaded", value: { px: 101 } });
    await setClock(t0 + 15_000); // expired 5 s ago
    // Nothing else serves expired data because of the option.
    expect(await service().get("quote:AAPL")).toMatchObject({ found: false });
    expect((await apiJson(entryPath("quote:AAPL"))).status).toBe(404);
    // The snapshot carries the kept row with its past expiry (for stale-if-error's KV path): no reader serves it.
    expect(await snapshotKeys()).toEqual(["quote:AAPL"]);
    expect(await liveSnapshotKeys(t0 + 15_000)).toEqual([]);
    expect((await apiJson("/api/v1/cache/entries")).body.data.keys).toEqual([]);
    expect((await apiJson("/api/v1/cache/stats")).body.data.size).toBe(0);
    v.state.failing = true;
    const r = await service().getOrSet("quote:AAPL", v.loader, opts);
    expect(r).toMatchObject<Partial<ServiceGetOrSet>>({ ok: true, state: "stale", staleIfError: true, value: { px: 101 }, source: "do" });
    expect(v.state.calls).toBe(2);
    // The client returns it too, counted as a stale hit, without an exception.
    const client = createCacheClient(service(), quiet);
    await setClock(t0 + 15_000 + STALE_IF_ERROR_BACKOFF_MS.first); // the backoff has passed: the loader runs, fails again
    expect(await client.getOrSet("quote:AAPL", v.loader, opts)).toEqual({ px: 101 });
    expect(v.state.calls).toBe(3);
    expect(client.stats()).toMatchObject({ stale: 1, errors: 0 });
  });

  it("backs off: during the backoff the loader is not called, and it doubles after each failure; a success ends it", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    const v = vendor(() => ({ px: 1 }));
    await service().getOrSet("quote:MSFT", v.loader, opts);
    v.state.failing = true;
    let t = t0 + 11_000;
    await setClock(t);
    expect(await service().getOrSet("quote:MSFT", v.loader, opts)).toMatchObject({ staleIfError: true });
    expect(v.state.calls).toBe(2);
    // 2 s of backoff: ten callers inside it get the stale value and none of them calls the loader.
    for (let i = 0; i < 10; i++) {
      await setClock(t + i * 190);
      expect(await service().getOrSet("quote:MSFT", v.loader, opts)).toMatchObject({ ok: true, staleIfError: true, value: { px: 1 } });
    }
    expect(v.state.calls).toBe(2);
    t += STALE_IF_ERROR_BACKOFF_MS.first;
    await setClock(t);
    await service().getOrSet("quote:MSFT", v.loader, opts);
    expect(v.state.calls).toBe(3); // tried again, failed: now 4 s
    await setClock(t + 2 * STALE_IF_ERROR_BACKOFF_MS.first - 1);
    await service().getOrSet("quote:MSFT", v.loader, opts);
    expect(v.state.calls).toBe(3);
    t += 2 * STALE_IF_ERROR_BACKOFF_MS.first;
    await setClock(t);
    v.state.failing = false;
    expect(await service().getOrSet("quote:MSFT", v.loader, opts)).toMatchObject({ ok: true, state: "loaded", value: { px: 1 } });
    expect(v.state.calls).toBe(4);
    expect((await service().getOrSet("quote:MSFT", v.loader, opts)).state).toBe("hit");
  });

  it("past the window the loader's error stands, and the alarm then deletes the kept row", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    const v = vendor(() => ({ px: 1 }));
    await service().getOrSet("quote:IBM", v.loader, opts);
    v.state.failing = true;
    // A caller with a shorter window of its own gets nothing 5 s after the expiry.
    await setClock(t0 + 15_000);
    expect(await service().getOrSet("quote:IBM", v.loader, { ...opts, staleIfErrorSeconds: 4 })).toMatchObject({ ok: false, code: "loader_failed" });
    expect(await rowCount()).toBe(1); // kept, for callers whose window is longer
    await setClock(t0 + 10_000 + 60_000 + 1);
    await runDurableObjectAlarm(cacheStub()); // the window has ended: the sweep deletes the row
    expect(await rowCount()).toBe(0);
    expect(await service().getOrSet("quote:IBM", v.loader, opts)).toMatchObject({ ok: false, code: "loader_failed", error: expect.stringMatching(/503/) });
    await expect(createCacheClient(service(), quiet).getOrSet("quote:IBM", v.loader, opts)).rejects.toThrow(/503/);
  });

  it("a hung loader (past loadTimeoutMs) is answered with the expired value too", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    await service().getOrSet("quote:HUNG", () => ({ px: 7 }), opts);
    await setClock(t0 + 12_000);
    let calls = 0;
    const hangs = () => {
      calls++;
      return new Promise<never>((_, reject) => held.push(setTimeout(() => reject(new Error("held")), 600_000)));
    };
    const r = await service().getOrSet("quote:HUNG", hangs, { ...opts, loadTimeoutMs: 100 });
    expect(r).toMatchObject({ ok: true, state: "stale", staleIfError: true, value: { px: 7 } });
    expect(calls).toBe(1);
    expect(await createCacheClient(service(), quiet).getOrSet("quote:HUNG", hangs, { ...opts, loadTimeoutMs: 100 })).toEqual({ px: 7 });
    expect(calls).toBe(1); // backing off
  });

  it("the kept row survives a restart (SQLite), and is kept only for values stored with the option", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    await service().getOrSet("kept", () => "old", opts);
    await service().getOrSet("plain", () => "old", { ttlSeconds: 10 });
    await setClock(t0 + 20_000);
    await runDurableObjectAlarm(cacheStub()); // sweeps "plain", keeps "kept"
    await abortAllDurableObjects();
    const fails = () => {
      throw new Error("down");
    };
    expect(await service().getOrSet("kept", fails, opts)).toMatchObject({ ok: true, staleIfError: true, value: "old" });
    expect(await service().getOrSet("plain", fails, opts)).toMatchObject({ ok: false, code: "loader_failed" });
    expect(await snapshotKeys()).toEqual(["kept"]);
    expect(await liveSnapshotKeys(t0 + 20_000)).toEqual([]);
  });

  it("tftcache unreachable: the client serves the KV entry that expired within the window when the loader fails", async () => {
    clock.now = () => Date.now(); // the client's KV path reads the real clock
    await writeKvSnapshot(5, { "quote:KV": { px: 9 } }, -5_000); // expired 5 s ago
    const down = new Proxy({}, { get: () => async () => { throw new Error("Network connection lost."); } }) as CacheServiceBinding;
    const client = createCacheClient(down, { ...quiet, kv: env.CACHE_DO_KV });
    const fails = () => Promise.reject(new Error("vendor down"));
    expect(await client.getOrSet("quote:KV", fails, { staleIfErrorSeconds: 60 })).toEqual({ px: 9 });
    expect(client.stats()).toMatchObject({ stale: 1 });
    await expect(client.getOrSet("quote:KV", fails, { staleIfErrorSeconds: 2 })).rejects.toThrow(/vendor down/);
    await expect(client.getOrSet("quote:KV", fails)).rejects.toThrow(/vendor down/);
    // The service's own path (the DO unreachable from tftcache) does the same.
    const unreachableDo = { idFromName: () => ({}), get: () => new Proxy({}, { get: () => async () => { throw new Error("overloaded"); } }) } as unknown as Env["CACHE_DO"];
    const svc = new CacheService(createExecutionContext(), { ...env, CACHE_DO: unreachableDo });
    expect(await svc.getOrSet("quote:KV", fails, { staleIfErrorSeconds: 60 })).toMatchObject({ ok: true, state: "stale", staleIfError: true, source: "kv", value: { px: 9 } });
    expect(await svc.getOrSet("quote:KV", fails, { staleIfErrorSeconds: 2 })).toMatchObject({ ok: false, code: "loader_failed" });
    expect(await env.CACHE_DO_KV.get(ENTRIES_KEY, "text")).not.toBeNull();
  });

  it("the kept row stays in KV through later flushes: with the DO unreachable, stale-if-error's KV path serves it within the window; the flush record counts live entries only", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    const flush = async () => expect((await postJson("/api/v1/cache/flush", {})).body.data).toMatchObject({ written: true });
    await service().getOrSet("quote:KEPT", () => ({ px: 5 }), opts); // fresh 10 s, kept 60 s past that
    await flush();
    await setClock(t0 + 15_000); // expired 5 s ago: kept, invisible
    await flush();
    await service().set("fx:EURUSD", 1.08, { ttlSeconds: 3600 });
    await setClock(t0 + 17_000);
    await flush(); // the flush after another change: the kept row must still be in it
    const kv = JSON.parse((await env.CACHE_DO_KV.get(ENTRIES_KEY, "text"))!);
    expect(kv.entries.map((e: [string]) => e[0])).toEqual(["fx:EURUSD", "quote:KEPT"]);
    expect(kv.entries[1][1]).toMatchObject({ value: { px: 5 }, expiresAt: t0 + 10_000 });
    // What verify-kv relies on: KV holds the DO's generation and digest; the record and do_cache_stats count the
    // entries live at writtenAt (1), and the record stays valid until the kept row leaves (the window's end).
    const meta = (await apiJson("/api/v1/cache/metadata")).body.data;
    expect({ generation: kv.generation, digest: kv.digest }).toEqual({ generation: meta.generation, digest: meta.digest });
    expect(meta.flushed).toMatchObject({ generation: kv.generation, digest: kv.digest, writtenAt: t0 + 17_000, entries: 1, validUntil: t0 + 70_000 });
    const statsDoc = JSON.parse((await env.CACHE_DO_KV.get("do_cache_stats", "text"))!);
    expect(statsDoc).toMatchObject({ generation: kv.generation, size: 1 });
    expect(kv.entries.filter((e: [string, { expiresAt: number }]) => e[1].expiresAt > kv.writtenAt)).toHaveLength(statsDoc.size);
    expect((await apiJson("/api/v1/cache/snapshot")).body.data.digest).toBe(kv.digest);

    // tftcache's DO unreachable: CacheService's KV path.
    const unreachableDo = { idFromName: () => ({}), get: () => new Proxy({}, { get: () => async () => { throw new Error("overloaded"); } }) } as unknown as Env["CACHE_DO"];
    const svc = new CacheService(createExecutionContext(), { ...env, CACHE_DO: unreachableDo });
    const fails = () => Promise.reject(new Error("vendor down"));
    await setClock(t0 + 30_000); // 20 s past the expiry, inside the 60 s window
    expect(await svc.get("quote:KEPT")).toMatchObject({ found: false }); // expired for every plain reader
    expect(await svc.getOrSet("quote:KEPT", fails, { staleIfErrorSeconds: 60 })).toMatchObject({ ok: true, state: "stale", staleIfError: true, source: "kv", value: { px: 5 } });
    expect(await svc.getOrSet("quote:KEPT", fails, { staleIfErrorSeconds: 10 })).toMatchObject({ ok: false, code: "loader_failed" });
    await setClock(t0 + 70_001); // the window has ended
    expect(await svc.getOrSet("quote:KEPT", fails, { staleIfErrorSeconds: 60 })).toMatchObject({ ok: false, code: "loader_failed" });
    // The sweep then deletes the row and the next flush drops it from KV.
    await runDurableObjectAlarm(cacheStub());
    await setClock(t0 + 72_000);
    await flush();
    expect(JSON.parse((await env.CACHE_DO_KV.get(ENTRIES_KEY, "text"))!).entries.map((e: [string]) => e[0])).toEqual(["fx:EURUSD"]);
  });

  it("maxStalenessMs bounds stale-if-error in the DO: an expired value older than it is not served, the loader's error stands", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    const v = vendor(() => ({ px: 3 }));
    await service().getOrSet("quote:AGE", v.loader, opts);
    v.state.failing = true;
    await setClock(t0 + 15_000); // stored 15 s ago, expired 5 s ago: inside the window
    expect(await service().getOrSet("quote:AGE", v.loader, { ...opts, maxStalenessMs: 12_000 })).toMatchObject({ ok: false, code: "loader_failed" });
    expect(v.state.calls).toBe(2);
    // During the backoff that failure started, the too-old value is still not served: the loader runs again.
    expect(await service().getOrSet("quote:AGE", v.loader, { ...opts, maxStalenessMs: 12_000 })).toMatchObject({ ok: false, code: "loader_failed" });
    expect(v.state.calls).toBe(3);
    // A caller who accepts that age gets it (during the backoff: without a loader call).
    expect(await service().getOrSet("quote:AGE", v.loader, { ...opts, maxStalenessMs: 20_000 })).toMatchObject({ ok: true, staleIfError: true, value: { px: 3 } });
    expect(v.state.calls).toBe(3);
    await expect(createCacheClient(service(), quiet).getOrSet("quote:AGE", v.loader, { ...opts, maxStalenessMs: 12_000 })).rejects.toThrow(/503/);
    // A live value older than maxStalenessMs is no stale-if-error answer either.
    await service().getOrSet("quote:LIVE", () => ({ px: 4 }), { ...opts, ttlSeconds: 3600 });
    await setClock(t0 + 30_000);
    expect(await service().getOrSet("quote:LIVE", v.loader, { ...opts, ttlSeconds: 3600, maxStalenessMs: 5_000 })).toMatchObject({ ok: false, code: "loader_failed" });
  });

  it("a DO whose entries table predates stale-if-error gains the column in place, its rows kept", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    await apiJson("/api/v1/cache/stats"); // create the instance
    await runInDurableObject(cacheStub(), (_: CacheDurableObject, state) => {
      const sql = state.storage.sql;
      sql.exec("DROP TABLE entries");
      sql.exec(`CREATE TABLE entries (id INTEGER PRIMARY KEY, key TEXT NOT NULL UNIQUE, value TEXT NOT NULL, expires_at INTEGER NOT NULL,
        cached_at INTEGER NOT NULL, last_accessed INTEGER NOT NULL, size INTEGER NOT NULL, fresh_until INTEGER)`);
      sql.exec("INSERT INTO entries (key, value, expires_at, cached_at, last_accessed, size) VALUES ('old', '1', ?, ?, ?, 100)", t0 + 3_600_000, t0, t0);
      sql.exec("INSERT OR REPLACE INTO meta (name, value) VALUES ('generation', '1'), ('entryCount', '1'), ('entryBytes', '100'), ('sizeModel', '2')");
    });
    await abortAllDurableObjects();
    expect(await service().get("old")).toMatchObject({ found: true, value: 1 });
    await service().getOrSet("new", () => "v", opts);
    await setClock(t0 + 15_000);
    await abortAllDurableObjects();
    expect(await service().getOrSet("new", () => Promise.reject(new Error("down")), opts)).toMatchObject({ ok: true, staleIfError: true, value: "v" });
    const sql = await runInDurableObject(cacheStub(), (_: CacheDurableObject, state) => state.storage.sql.exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE name = 'entries'").one().sql);
    expect(sql).toMatch(/retain_until/);
  });

  it("is validated like the other options", async () => {
    for (const bad of [0, -1, Number.NaN, "60"]) {
      expect(await service().getOrSet("k", () => 1, { staleIfErrorSeconds: bad as number })).toMatchObject({ ok: false, code: "bad_request", error: expect.stringMatching(/staleIfErrorSeconds/) });
    }
  });
});

describe("negative caching (negativeTtlSeconds)", () => {
  it("a loader's undefined is cached as 'not found' for its own TTL: no loader call until then, no entry anywhere", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    let calls = 0;
    const lookup = () => {
      calls++;
      return undefined;
    };
    const opts = { ttlSeconds: 300, negativeTtlSeconds: 30 };
    expect(await service().getOrSet("sym:NOPE", lookup, opts)).toMatchObject({ ok: true, notFound: true, state: "loaded" });
    expect(await service().getOrSet("sym:NOPE", lookup, opts)).toMatchObject({ ok: true, notFound: true, state: "hit" });
    const client = createCacheClient(service(), quiet);
    expect(await client.getOrSet("sym:NOPE", lookup, opts)).toBeUndefined();
    expect(calls).toBe(1);
    expect(client.stats()).toMatchObject({ hits: 1, errors: 0 });
    // Not an entry: get, the listing and the snapshot never see it.
    expect(await service().get("sym:NOPE")).toMatchObject({ found: false });
    expect(await snapshotKeys()).toEqual([]);
    await setClock(t0 + 30_001);
    expect(await service().getOrSet("sym:NOPE", lookup, opts)).toMatchObject({ notFound: true, state: "loaded" });
    expect(calls).toBe(2);
  });

  it("a write of the key (or a purge) ends it; without the option undefined is not cached; null is a value", async () => {
    let calls = 0;
    const lookup = () => (calls++, undefined);
    await service().getOrSet("sym:X", lookup, { negativeTtlSeconds: 60 });
    expect(await service().set("sym:X", { listed: true })).toMatchObject({ ok: true });
    expect(await service().getOrSet("sym:X", lookup, { negativeTtlSeconds: 60 })).toMatchObject({ ok: true, state: "hit", value: { listed: true } });
    await service().getOrSet("sym:Y", lookup, { negativeTtlSeconds: 60 });
    expect(await service().deletePrefix("sym:")).toMatchObject({ ok: true });
    expect(await service().getOrSet("sym:Y", lookup, { negativeTtlSeconds: 60 })).toMatchObject({ state: "loaded", notFound: true });
    expect(calls).toBe(3); // sym:X once, sym:Y before and after the purge
    for (let i = 0; i < 2; i++) expect(await service().getOrSet("sym:Z", lookup)).toMatchObject({ ok: false, code: "not_cacheable" });
    expect(calls).toBe(5);
    expect(await service().getOrSet("sym:N", () => null, { negativeTtlSeconds: 60 })).toMatchObject({ ok: true, state: "loaded", value: null });
    expect(await service().get("sym:N")).toMatchObject({ found: true, value: null });
  });
});

describe("TTL jitter (ttlJitter)", () => {
  const expiries = async () => new Map<string, number>((await apiJson("/api/v1/cache/entries")).body.data.keys.map((k: { key: string; expiresAt: number }) => [k.key, k.expiresAt]));

  it("shortens the TTL by random × jitter × ttl: pinned randomness gives exact expiries, for getOrSet and set", async () => {
    const t0 = futureNoon();
    await fakeClock(t0);
    clock.random = () => 0.5;
    await service().getOrSet("j:a", () => 1, { ttlSeconds: 100, ttlJitter: 0.2 });
    await service().set("j:b", 1, { ttlSeconds: 100, ttlJitter: 0.2 });
    clock.random = () => 0;
    await service().set("j:c", 1, { ttlSeconds: 100, ttlJitter: 0.2 });
    await service().set("j:d", 1, { ttlSeconds: 100 });
    expect(Object.fromEntries(await expiries())).toEqual({ "j:a": t0 + 90_000, "j:b": t0 + 90_000, "j:c": t0 + 100_000, "j:d": t0 + 100_000 });
  });

  it("spreads a batch within (ttl × (1 − jitter), ttl]: never longer than asked", async () => {
    const t0 = futureNoon();
    await fakeClock(t0);
    for (let i = 0; i < 40; i++) await service().set(`b:${i}`, i, { ttlSeconds: 60, ttlJitter: 0.5 });
    const all = [...(await expiries()).values()];
    expect(all).toHaveLength(40);
    for (const at of all) {
      expect(at).toBeGreaterThan(t0 + 30_000);
      expect(at).toBeLessThanOrEqual(t0 + 60_000);
    }
    expect(new Set(all.map((at) => Math.floor(at / 1000))).size).toBeGreaterThan(1);
  });

  it("refuses a jitter outside [0, 1)", async () => {
    for (const bad of [1, 1.5, -0.1, Number.NaN]) {
      expect(await service().getOrSet("k", () => 1, { ttlJitter: bad })).toMatchObject({ ok: false, code: "bad_request", error: expect.stringMatching(/ttlJitter/) });
      expect(await service().set("k", 1, { ttlJitter: bad })).toMatchObject({ ok: false, error: expect.stringMatching(/ttlJitter/) });
    }
    expect((await postJson("/api/v1/cache/flush", {})).status).toBe(200);
  });
});
