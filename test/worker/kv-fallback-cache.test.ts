import { abortAllDurableObjects, createExecutionContext } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { createCacheClient, type CacheServiceBinding } from "../../client/index.js";
import { ENTRIES_KEY, SNAPSHOT_TRUST_MS, digestEntries, forgetCachedSnapshot, snapshotDownloads, type EntriesSnapshot, type SnapshotEntry } from "../../protocol/index.js";
import { clock } from "../../worker/clock.js";
import type { Env } from "../../worker/env.js";
import { handleRequest } from "../../worker/index.js";
import { CacheService } from "../../worker/service.js";
import { ADMIN_KEY, BASE, entryPath, fakeClock, freshState, randomAddress } from "./helpers.js";

/*
 * Issue 15: the KV fallback keeps one verified, indexed snapshot per isolate (protocol/snapshot-cache.ts) and
 * reuses it while KV's key metadata says it is unchanged. These tests count downloads (snapshotDownloads: this
 * isolate's) and check that a torn snapshot is refused on every fallback path even after a verified one was kept.
 */

beforeEach(freshState);
afterEach(() => vi.restoreAllMocks());

const quiet = { log: () => {} };
const down = new Proxy({}, { get: () => async () => { throw new Error("Network connection lost."); } }) as CacheServiceBinding;
const flagOff = (extra: Partial<Env> = {}) => new CacheService(createExecutionContext(), { ...env, FEATURE_FLAG_DO_CACHE: "false", ...extra });
const service = () => exports.CacheService as unknown as CacheServiceBinding;

/** Writes `do_cache_entries` with the key metadata a flush writes (generation, digest, writtenAt); `torn` breaks the digest. */
async function writeSnapshot(generation: number, values: Record<string, unknown>, opts: { torn?: boolean; cachedAt?: number; writtenAt?: number } = {}): Promise<EntriesSnapshot> {
  const now = clock.now();
  const cachedAt = opts.cachedAt ?? now;
  const entries: Array<[string, SnapshotEntry]> = Object.entries(values).map(([key, value]) => [key, { value, expiresAt: now + 3_600_000, lastAccessed: cachedAt, cachedAt }]);
  const snapshot: EntriesSnapshot = { format: 1, generation, writtenAt: opts.writtenAt ?? now, digest: await digestEntries(entries), entries };
  if (opts.torn) snapshot.entries[0]![1].value = { torn: true }; // changed after the digest: torn
  const metadata = { format: 1, generation, writtenAt: snapshot.writtenAt, digest: snapshot.digest, entries: entries.length };
  await env.CACHE_DO_KV.put(ENTRIES_KEY, JSON.stringify(snapshot), { metadata });
  return snapshot;
}

/** The flag-off admin GET of one entry. */
async function adminGet(key: string): Promise<{ status: number; body: any }> {
  const headers = { "x-api-key": ADMIN_KEY, "cf-connecting-ip": randomAddress() };
  const res = await handleRequest(new Request(`${BASE}${entryPath(key)}`, { headers }), { ...env, FEATURE_FLAG_DO_CACHE: "false" });
  return { status: res.status, body: await res.json() };
}

describe("the KV fallback reuses one verified snapshot per isolate", () => {
  it("100 fallback gets of an unchanged generation download and verify the snapshot once (CacheService, client, admin GET)", async () => {
    await writeSnapshot(4, { "quote:AAPL": { bid: 1 }, "quote:MSFT": { bid: 2 } });
    const before = snapshotDownloads();
    const svc = flagOff();
    for (let i = 0; i < 100; i++) expect(await svc.get(i % 2 ? "quote:AAPL" : "quote:MSFT")).toMatchObject({ found: true, source: "kv" });
    const client = createCacheClient(down, { ...quiet, kv: env.CACHE_DO_KV });
    for (let i = 0; i < 100; i++) expect(await client.get("quote:AAPL")).toEqual({ bid: 1 });
    for (let i = 0; i < 10; i++) expect((await adminGet("quote:MSFT")).status).toBe(200);
    expect(snapshotDownloads() - before).toBe(1);
  });

  it("concurrent fallback reads of a new snapshot share one download (single flight)", async () => {
    await writeSnapshot(4, { a: 1 });
    const before = snapshotDownloads();
    const svc = flagOff();
    const reads = await Promise.all(Array.from({ length: 20 }, () => svc.get("a")));
    for (const r of reads) expect(r).toMatchObject({ found: true, value: 1 });
    expect(snapshotDownloads() - before).toBe(1);
    // A get-only source too: one `get` for 20 concurrent reads.
    forgetCachedSnapshot();
    let gets = 0;
    const getOnly = { get: (key: string, type: "text") => (gets++, env.CACHE_DO_KV.get(key, type)) };
    const client = createCacheClient(down, { ...quiet, kv: getOnly });
    expect(await Promise.all(Array.from({ length: 20 }, () => client.get("a")))).toEqual(Array(20).fill(1));
    expect(gets).toBe(1);
  });

  it("a new generation is picked up by the next read: its metadata no longer matches the kept copy", async () => {
    await writeSnapshot(4, { "quote:AAPL": { bid: 1 } });
    const svc = flagOff();
    expect(await svc.get("quote:AAPL")).toMatchObject({ found: true, value: { bid: 1 }, generation: 4 });
    const before = snapshotDownloads();
    await writeSnapshot(5, { "quote:AAPL": { bid: 2 } });
    expect(await svc.get("quote:AAPL")).toMatchObject({ found: true, value: { bid: 2 }, generation: 5 });
    expect(await adminGet("quote:AAPL")).toMatchObject({ status: 200, body: { data: { value: { bid: 2 } } } });
    expect(await createCacheClient(down, { ...quiet, kv: env.CACHE_DO_KV }).get("quote:AAPL")).toEqual({ bid: 2 });
    expect(snapshotDownloads() - before).toBe(1);
  });

  it("a verified snapshot kept, then KV replaced by a torn one with a new generation: refused by CacheService, the admin GET and the client", async () => {
    await writeSnapshot(4, { "quote:AAPL": { bid: 1 } });
    const svc = flagOff();
    const client = createCacheClient(down, { ...quiet, kv: env.CACHE_DO_KV });
    expect(await svc.get("quote:AAPL")).toMatchObject({ found: true });
    expect((await adminGet("quote:AAPL")).status).toBe(200);
    expect(await client.get("quote:AAPL")).toEqual({ bid: 1 });

    await writeSnapshot(5, { "quote:AAPL": { bid: 999 } }, { torn: true });
    const before = snapshotDownloads();
    for (let i = 0; i < 5; i++) {
      expect(await svc.get("quote:AAPL")).toMatchObject({ found: false, source: "none", fallbackReason: expect.stringMatching(/digest mismatch/) });
      expect(await svc.getMany(["quote:AAPL"])).toMatchObject({ "quote:AAPL": { found: false, source: "none" } });
      const admin = await adminGet("quote:AAPL");
      expect(admin.status).toBe(404);
      expect(admin.body.error.message).toMatch(/digest mismatch/);
      expect(await client.get("quote:AAPL")).toBeUndefined();
      expect(await client.lookup("quote:AAPL")).toMatchObject({ found: false, source: "none" });
    }
    let loads = 0;
    expect(await svc.getOrSet("quote:AAPL", () => ({ bid: ++loads }))).toMatchObject({ ok: true, source: "loader", value: { bid: 1 } });
    // The torn verdict is kept too: refused every time without hashing it again.
    expect(snapshotDownloads() - before).toBe(1);
  });

  it("a snapshot without key metadata (written by hand, or before 0.2) is never reused: each read verifies it", async () => {
    const entries: Array<[string, SnapshotEntry]> = [["a", { value: 1, expiresAt: clock.now() + 60_000, lastAccessed: 0, cachedAt: clock.now() }]];
    await env.CACHE_DO_KV.put(ENTRIES_KEY, JSON.stringify({ format: 1, generation: 4, writtenAt: clock.now(), digest: await digestEntries(entries), entries }));
    const before = snapshotDownloads();
    const svc = flagOff();
    for (let i = 0; i < 3; i++) expect(await svc.get("a")).toMatchObject({ found: true, value: 1 });
    expect(snapshotDownloads() - before).toBe(3);
  });

  it("a KV binding with only get: the kept copy serves for SNAPSHOT_TRUST_MS, then the snapshot is read again", async () => {
    await writeSnapshot(4, { a: 1 });
    let gets = 0;
    const getOnly = { get: (key: string, type: "text") => (gets++, env.CACHE_DO_KV.get(key, type)) };
    let now = Date.now();
    vi.spyOn(Date, "now").mockImplementation(() => now);
    const client = createCacheClient(down, { ...quiet, kv: getOnly });
    expect(await client.get("a")).toBe(1);
    await writeSnapshot(5, { a: 2 });
    now += SNAPSHOT_TRUST_MS - 1;
    expect(await client.get("a")).toBe(1); // within the bound: KV cannot say it changed
    expect(gets).toBe(1);
    now += 1;
    expect(await client.get("a")).toBe(2);
    expect(gets).toBe(2);
  });
});

describe("provenance and maxStalenessMs", () => {
  it("lookup says memory or do (SQLite), the generation and the age; maxStalenessMs turns an older value into a miss", async () => {
    const setTime = await fakeClock();
    const t0 = clock.now();
    const client = createCacheClient(service(), quiet);
    expect(await client.set("quote:AAPL", { bid: 1 }, { ttlSeconds: 3600 })).toBe(true);
    const first = await client.lookup("quote:AAPL");
    expect(first).toMatchObject({ found: true, value: { bid: 1 }, source: "memory", ageMs: 0, stale: false, cachedAt: t0 });
    expect(first.generation).toBeGreaterThan(0);
    await setTime(t0 + 5_000);
    // A restarted DO has an empty memory: the value comes from SQLite, then memory holds it.
    await abortAllDurableObjects();
    expect(await client.lookup("quote:AAPL")).toMatchObject({ found: true, source: "do", ageMs: 5_000, generation: first.generation });
    expect(await client.lookup("quote:AAPL")).toMatchObject({ found: true, source: "memory" });

    expect(await client.get("quote:AAPL", { maxStalenessMs: 5_000 })).toEqual({ bid: 1 });
    expect(await client.get("quote:AAPL", { maxStalenessMs: 4_999 })).toBeUndefined();
    expect(await client.lookup("quote:AAPL", { maxStalenessMs: 1_000 })).toMatchObject({ found: false, tooOld: true });
    expect([...(await client.getMany(["quote:AAPL"], { maxStalenessMs: 1_000 }))]).toEqual([]);
    // getOrSet: the DO treats the too-old value as a miss and runs the loader (once), storing the new value.
    let loads = 0;
    expect(await client.getOrSet("quote:AAPL", () => ({ bid: 100 + ++loads }), { maxStalenessMs: 1_000 })).toEqual({ bid: 101 });
    expect(await client.getOrSet("quote:AAPL", () => ({ bid: 100 + ++loads }), { maxStalenessMs: 1_000 })).toEqual({ bid: 101 });
    expect(loads).toBe(1);
    expect(await client.lookup("quote:AAPL")).toMatchObject({ source: "memory", ageMs: 0 });
  });

  it("a KV fallback's age counts the snapshot's (never younger than writtenAt); maxStalenessMs refuses it on get and getOrSet", async () => {
    const setTime = await fakeClock();
    const t0 = clock.now();
    await writeSnapshot(7, { "quote:AAPL": { bid: 3 } }, { cachedAt: t0 - 2_000, writtenAt: t0 });
    await setTime(t0 + 30_000); // the flush delay plus KV's own caching
    const svc = flagOff();
    expect(await svc.get("quote:AAPL")).toMatchObject({ found: true, source: "kv", ageMs: 32_000, generation: 7, cachedAt: t0 - 2_000, snapshotWrittenAt: t0 });
    const client = createCacheClient(svc as unknown as CacheServiceBinding, quiet);
    expect(await client.lookup("quote:AAPL")).toMatchObject({ found: true, source: "kv", ageMs: 32_000, generation: 7, stale: false });
    expect(await client.get("quote:AAPL", { maxStalenessMs: 10_000 })).toBeUndefined();
    let loads = 0;
    expect(await svc.getOrSet("quote:AAPL", () => ({ bid: ++loads }), { maxStalenessMs: 10_000 })).toMatchObject({ ok: true, source: "loader", value: { bid: 1 } });
    expect(await svc.getOrSet("quote:AAPL", () => ({ bid: ++loads }), { maxStalenessMs: 60_000 })).toMatchObject({ ok: true, source: "kv", value: { bid: 3 }, ageMs: 32_000 });
    expect(loads).toBe(1);
    // The client's own KV read (tftcache unreachable) says the same, on the client's clock (Date.now).
    vi.spyOn(Date, "now").mockImplementation(() => clock.now());
    const direct = createCacheClient(down, { ...quiet, kv: env.CACHE_DO_KV });
    expect(await direct.get("quote:AAPL", { maxStalenessMs: 10_000 })).toBeUndefined();
    expect(await direct.getOrSet("quote:AAPL", () => "from loader", { maxStalenessMs: 10_000 })).toBe("from loader");
  });

  it("a bad maxStalenessMs is a miss (never a too-old value, never an exception) and getOrSet runs the loader uncached", async () => {
    const client = createCacheClient(service(), quiet);
    await client.set("k", 1);
    expect(await client.get("k", { maxStalenessMs: -1 })).toBeUndefined();
    expect(await client.getOrSet("k", () => 2, { maxStalenessMs: Number.NaN })).toBe(2);
    expect(client.stats().errors).toBe(2);
  });
});

describe("client stats: loader time and failures", () => {
  it("counts loader time (total and longest) and loader failures beside hits, misses and fallbacks", async () => {
    const client = createCacheClient(service(), quiet);
    await client.getOrSet("slow", () => new Promise((r) => setTimeout(() => r("v"), 20)));
    await expect(client.getOrSet("bad", () => Promise.reject(new Error("vendor 503")))).rejects.toThrow(/503/);
    await expect(client.getOrSet("hung", () => new Promise(() => {}), { loadTimeoutMs: 50 })).rejects.toThrow(/did not settle/);
    expect(await client.getOrSet("slow", () => "not called")).toBe("v");
    const s = client.stats();
    // loads counts every loader call, the one that threw and the one that hung included.
    expect(s).toMatchObject({ hits: 1, misses: 3, loads: 3, loaderFailures: 2 });
    expect(s.loaderMaxMs).toBeGreaterThanOrEqual(20);
    expect(s.loaderMs).toBeGreaterThanOrEqual(s.loaderMaxMs);
  });
});
