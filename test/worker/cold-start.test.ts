import { abortAllDurableObjects, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { ENTRIES_KEY } from "../../protocol/index.js";
import type { CacheDurableObject } from "../../worker/cache/cache-do.js";
import { apiJson, cacheStub, entryPath, fakeClock, freshState, futureNoon, postJson, putJson } from "./helpers.js";
import { readKvJson } from "./kv-fixtures.js";

beforeEach(freshState);

const metadata = async () => (await apiJson("/api/v1/cache/metadata")).body.data;
const sqlOf = (table: string) =>
  runInDurableObject(cacheStub(), (_: CacheDurableObject, state) => state.storage.sql.exec<{ sql: string }>("SELECT sql FROM sqlite_master WHERE name = ?", table).toArray()[0]?.sql ?? null);

describe("schema upgrade: 0.1's WITHOUT ROWID entries table", () => {
  it("a DO created with the old schema and data upgrades in place without losing an entry, LRU order included", async () => {
    const now = futureNoon();
    await fakeClock(now);
    await apiJson("/api/v1/cache/stats"); // create the instance
    // Rebuild storage exactly as 0.1 left it: its table, its rows (size = key + value bytes), its meta.
    await runInDurableObject(cacheStub(), (_: CacheDurableObject, state) => {
      const sql = state.storage.sql;
      sql.exec("DROP TABLE entries");
      sql.exec("DELETE FROM meta");
      sql.exec(`CREATE TABLE entries (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER NOT NULL, cached_at INTEGER NOT NULL,
        last_accessed INTEGER NOT NULL, size INTEGER NOT NULL, fresh_until INTEGER) WITHOUT ROWID`);
      for (let i = 0; i < 300; i++) {
        const value = JSON.stringify({ i, pad: "x".repeat(i) });
        sql.exec("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, NULL)", `k${i}`, value, now + 3_600_000, now - 1000, now - 1000 + ((i * 7) % 300), `k${i}`.length + value.length);
      }
      sql.exec("INSERT INTO meta (name, value) VALUES ('generation', '300'), ('kvFlushedGeneration', '300')");
    });
    await abortAllDurableObjects();
    const m = await metadata();
    expect(m).toMatchObject({ generation: 300, size: 300, load: { source: "do" } });
    expect(await sqlOf("entries")).not.toMatch(/WITHOUT ROWID/i);
    expect(await sqlOf("entries_upgrade")).toBeNull();
    for (const i of [0, 150, 299]) expect((await apiJson(entryPath(`k${i}`))).body.data.value).toEqual({ i, pad: "x".repeat(i) });
    // Sizes now count what each entry costs in the snapshot, and survive the next restart as they are.
    const snap = (await apiJson("/api/v1/cache/snapshot")).body.data;
    expect(snap.entries).toHaveLength(300);
    expect(m.bytes).toBeGreaterThan(300 * 94);
    await abortAllDurableObjects();
    expect((await metadata()).size).toBe(300);
  });
});

describe("cold start reads KV only when KV may be newer", () => {
  it("an older or equal snapshot is not downloaded at start-up; it is verified shortly after, by the alarm", async () => {
    await putJson(entryPath("a"), { value: 1 });
    await postJson("/api/v1/cache/flush", {});
    await abortAllDurableObjects();
    const atStart = await metadata();
    expect(atStart.load.kvSnapshot).toEqual({ status: "ok", generation: 1, error: null, verified: false });
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    expect((await metadata()).load.kvSnapshot).toEqual({ status: "ok", generation: 1, error: null, verified: true });
  });

  it("the check after start-up still catches a corrupt snapshot whose metadata looks current, and replaces it", async () => {
    await putJson(entryPath("a"), { value: 1 });
    await postJson("/api/v1/cache/flush", {});
    const { metadata: meta } = await env.CACHE_DO_KV.getWithMetadata(ENTRIES_KEY);
    await env.CACHE_DO_KV.put(ENTRIES_KEY, '{"format":1,"generation":1,"entries":[[', { metadata: meta }); // truncated body
    await abortAllDurableObjects();
    expect((await metadata()).load.kvSnapshot).toMatchObject({ status: "ok", verified: false });
    expect((await apiJson(entryPath("a"))).status).toBe(200);
    await runDurableObjectAlarm(cacheStub());
    const after = await metadata();
    expect(after.load.kvSnapshot).toMatchObject({ status: "corrupt", verified: true, error: expect.stringMatching(/not valid JSON/) });
    // The same alarm owed and wrote the replacement.
    expect(after.kv.pendingSince).toBeNull();
    expect((await readKvJson(ENTRIES_KEY)).entries[0][0]).toBe("a");
  });

  it("a snapshot whose metadata says it is newer is downloaded and adopted at start-up", async () => {
    await putJson(entryPath("local"), { value: 1 });
    await postJson("/api/v1/cache/flush", {});
    const kv = await readKvJson(ENTRIES_KEY);
    // Another writer (a restored or moved DO) published generation 50.
    const { writeKvSnapshot } = await import("./kv-fixtures.js");
    const newer = await writeKvSnapshot(50, { remote: { px: 2 } });
    await env.CACHE_DO_KV.put(ENTRIES_KEY, JSON.stringify(newer), { metadata: { format: 1, generation: 50, writtenAt: newer.writtenAt, digest: newer.digest, entries: 1 } });
    expect(kv.generation).toBe(1);
    await abortAllDurableObjects();
    const m = await metadata();
    expect(m.load).toMatchObject({ source: "kv", kvSnapshot: { status: "ok", generation: 50, verified: true } });
    expect((await apiJson(entryPath("remote"))).body.data.value).toEqual({ px: 2 });
  });

  it("values are read from SQLite on first use after a cold start, and snapshots read the rest", async () => {
    for (let i = 0; i < 50; i++) await putJson(entryPath(`k${i}`), { value: { i } });
    const before = (await apiJson("/api/v1/cache/snapshot")).body.data.digest;
    await abortAllDurableObjects();
    expect((await apiJson(entryPath("k7"))).body.data.value).toEqual({ i: 7 });
    expect((await apiJson("/api/v1/cache/snapshot")).body.data.digest).toBe(before);
  });
});

describe("memory fills from SQLite on use after a cold start", () => {
  const indexComplete = () => runInDurableObject(cacheStub(), (i: CacheDurableObject) => (i as unknown as { index: { isComplete: boolean } }).index.isComplete);

  it("reads and writes within the bounds touch single rows; stats, listings and evictions complete the index once", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    for (let i = 0; i < 40; i++) {
      await setClock(t0 + i);
      await putJson(entryPath(`k${i}`), { value: { i } });
    }
    await setClock(t0 + 100);
    await apiJson(entryPath("k3")); // k3 is now the most recently used
    await setClock(t0 + 200);
    await runDurableObjectAlarm(cacheStub()); // persist access times
    await abortAllDurableObjects();
    expect((await apiJson(entryPath("k5"))).body.data.value).toEqual({ i: 5 });
    expect((await putJson(entryPath("new"), { value: 1 })).status).toBe(200);
    expect((await apiJson(entryPath("nope"))).status).toBe(404);
    expect(await indexComplete()).toBe(false);
    const stats = (await apiJson("/api/v1/cache/stats")).body.data;
    expect(stats.size).toBe(41);
    expect(await indexComplete()).toBe(true);
    // LRU order is the whole cache's: what was used since the start (k5, new) is the most recent, k3 before them.
    const order = await runInDurableObject(cacheStub(), (i: CacheDurableObject) => [...(i as unknown as { index: { keys(): Iterable<string> } }).index.keys()]);
    expect(order.slice(-3)).toEqual(["k3", "k5", "new"]);
  });

  it("the row count and byte total survive restarts exactly, without reading the rows", async () => {
    for (let i = 0; i < 30; i++) await putJson(entryPath(`k${i}`), { value: "x".repeat(i) });
    await apiJson(entryPath("k1"), { method: "DELETE" });
    const before = (await apiJson("/api/v1/cache/stats")).body.data;
    await abortAllDurableObjects();
    const m = await metadata();
    expect(m).toMatchObject({ size: before.size, bytes: before.bytes });
  });
});

describe("/metadata names the body the DO flushed (what verify-kv checks KV's bytes against)", () => {
  const valuesHeld = () =>
    runInDurableObject(cacheStub(), (i: CacheDurableObject) => {
      const index = (i as unknown as { index: { keys(): Iterable<string>; holdsValue(key: string): boolean } }).index;
      return [...index.keys()].filter((k) => index.holdsValue(k)).length;
    });
  const sha256Of = async (text: string) => `sha256:${[...new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)))].map((b) => b.toString(16).padStart(2, "0")).join("")}`;

  it("its SHA-256 is that of KV's bytes; it survives a restart, where /metadata then reads no values; a write moves the DO past it", async () => {
    for (let i = 0; i < 20; i++) await putJson(entryPath(`k${i}`), { value: { i, s: "é✓" } });
    const flush = (await postJson("/api/v1/cache/flush", {})).status;
    expect(flush).toBe(200);
    const kvText = (await env.CACHE_DO_KV.get(ENTRIES_KEY, "text"))!;
    const m = await metadata();
    const kvDoc = JSON.parse(kvText);
    expect(m.flushed).toEqual({
      generation: m.generation,
      digest: kvDoc.digest,
      sha256: await sha256Of(kvText),
      writtenAt: kvDoc.writtenAt,
      entries: 20,
      validUntil: Math.min(...kvDoc.entries.map(([, e]: [string, { expiresAt: number }]) => e.expiresAt)),
    });
    expect(m.digest).toBe(m.flushed.digest);
    await abortAllDurableObjects();
    const cold = await metadata();
    expect(cold.flushed).toEqual(m.flushed);
    expect(cold.digest).toBe(m.digest);
    expect(await valuesHeld()).toBe(0); // the digest came from the record, not from reading every value
    await putJson(entryPath("k0"), { value: "changed" });
    const after = await metadata();
    expect(after.generation).toBe(m.generation + 1);
    expect(after.flushed.generation).toBe(m.generation); // verify-kv will not take KV's bytes as current
    expect(after.digest).not.toBe(m.digest);
  });

  it("once an entry it holds has expired, /metadata's digest is the live state's again, not the record's", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    await putJson(entryPath("short"), { value: 1, ttlSeconds: 60 });
    await putJson(entryPath("long"), { value: 2, ttlSeconds: 3600 });
    await postJson("/api/v1/cache/flush", {});
    const m = await metadata();
    expect(m.digest).toBe(m.flushed.digest);
    await setClock(t0 + 61_000);
    const later = await metadata();
    expect(later.flushed.digest).toBe(m.flushed.digest);
    expect(later.digest).not.toBe(m.flushed.digest); // "short" is gone from the live state
  });

  it("a clear forgets it, and an adopted KV snapshot (not written by this DO) has none until the next flush", async () => {
    await putJson(entryPath("a"), { value: 1 });
    await postJson("/api/v1/cache/flush", {});
    expect((await metadata()).flushed).not.toBeNull();
    expect((await apiJson("/api/v1/cache?scope=all", { method: "DELETE" })).status).toBe(200);
    expect((await metadata()).flushed).toBeNull();
    await putJson(entryPath("b"), { value: 2 });
    await postJson("/api/v1/cache/flush", {});
    expect((await metadata()).flushed).not.toBeNull();
    const { writeKvSnapshot } = await import("./kv-fixtures.js");
    const newer = await writeKvSnapshot(80, { remote: 1 });
    await env.CACHE_DO_KV.put(ENTRIES_KEY, JSON.stringify(newer), { metadata: { format: 1, generation: 80, writtenAt: newer.writtenAt, digest: newer.digest, entries: 1 } });
    await abortAllDurableObjects();
    const adopted = await metadata();
    expect(adopted).toMatchObject({ generation: 80, load: { source: "kv" }, flushed: null });
  });
});

