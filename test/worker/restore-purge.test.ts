import { abortAllDurableObjects, createExecutionContext, runDurableObjectAlarm } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { createCacheClient, type CacheServiceBinding } from "../../client/index.js";
import { ENTRIES_KEY, SNAPSHOT_FRESH_UNTIL_BYTES, digestEntries, type SnapshotEntry } from "../../protocol/index.js";
import { CacheService } from "../../worker/service.js";
import { apiJson, cacheStub, countKvWrites, entryPath, fakeClock, freshState, futureNoon, postJson, putJson } from "./helpers.js";

beforeEach(freshState);

const snapshotNow = async () => (await apiJson("/api/v1/cache/snapshot")).body.data;
const keysNow = async () => (await snapshotNow()).entries.map((e: [string]) => e[0]);

describe("purge by prefix", () => {
  it("deletes every key with the prefix and nothing else, and KV follows with the next flush", async () => {
    for (const key of ["quote:AAPL", "quote:MSFT", "fx:EURUSD", "quote", "quotes:x"]) await putJson(entryPath(key), { value: 1 });
    const res = await apiJson("/api/v1/cache/entries?prefix=quote%3A", { method: "DELETE" });
    expect(res.status).toBe(200);
    expect(res.body.data).toMatchObject({ prefix: "quote:", deleted: 2 });
    expect(await keysNow()).toEqual(["fx:EURUSD", "quote", "quotes:x"]);
    expect((await apiJson("/api/v1/cache/stats")).body.data.kv.pendingSince).not.toBeNull();
    await abortAllDurableObjects();
    expect(await keysNow()).toEqual(["fx:EURUSD", "quote", "quotes:x"]); // gone from SQLite too
  });

  it("refuses an empty or missing prefix", async () => {
    await putJson(entryPath("a"), { value: 1 });
    for (const path of ["/api/v1/cache/entries", "/api/v1/cache/entries?prefix="]) {
      const res = await apiJson(path, { method: "DELETE" });
      expect(res.status).toBe(400);
      expect(res.body.error.message).toMatch(/prefix is required/);
    }
    expect(await keysNow()).toEqual(["a"]);
  });
});

describe("purge by prefix, hard and soft: one DO operation for CacheService, the admin API and the CLI (issue 15)", () => {
  const service = () => exports.CacheService as unknown as CacheServiceBinding;
  const entryOf = (snap: { entries: Array<[string, SnapshotEntry]> }, key: string) => snap.entries.find(([k]) => k === key)?.[1];

  /** Three entries written and flushed, the clock moved on: KV is in sync, and the next flush is the purge's. */
  async function flushedCache(t0: number, setClock: (ms: number) => Promise<void>) {
    await postJson("/api/v1/cache/seed", { entries: [{ key: "quote:A", value: { px: 1 } }, { key: "quote:B", value: { px: 2 } }, { key: "fx:C", value: { px: 3 } }] });
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    await setClock(t0 + 60_000);
    return countKvWrites();
  }

  it("soft: the entries stay, stale from now; getOrSet serves the old value while one refresh replaces it; SQLite and the next flush (2 KV writes) carry it", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    const writes = await flushedCache(t0, setClock);
    const before = await snapshotNow();
    const bytesBefore = (await apiJson("/api/v1/cache/stats")).body.data.bytes;
    const res = await apiJson("/api/v1/cache/entries?prefix=quote%3A&mode=soft", { method: "DELETE" });
    expect(res.body.data).toMatchObject({ prefix: "quote:", deleted: 0, mode: "soft", marked: 2 });
    const after = await snapshotNow();
    expect(after.entries.map(([k]: [string]) => k)).toEqual(["fx:C", "quote:A", "quote:B"]);
    expect(entryOf(after, "quote:A")).toMatchObject({ value: { px: 1 }, freshUntil: t0 + 60_000 });
    expect(entryOf(after, "fx:C")!.freshUntil).toBeUndefined();
    expect(after.digest).toBe(before.digest); // values and expiries unchanged: what verify-kv compares
    expect((await apiJson("/api/v1/cache/stats")).body.data.bytes).toBe(bytesBefore + 2 * SNAPSHOT_FRESH_UNTIL_BYTES);
    // A plain get still finds it, flagged stale; getOrSet serves it once more and the refresh loads the new value.
    expect(await service().get("quote:A")).toMatchObject({ found: true, stale: true, value: { px: 1 } });
    const pending: Promise<unknown>[] = [];
    let loads = 0;
    const client = createCacheClient(service(), { log: () => {}, ctx: { waitUntil: (p) => pending.push(p) } });
    expect(await client.getOrSet("quote:A", () => ({ px: 10 + ++loads }))).toEqual({ px: 1 });
    expect(pending).toHaveLength(1);
    await Promise.all(pending);
    expect(loads).toBe(1);
    expect(await client.getOrSet("quote:A", () => ({ px: 10 + ++loads }))).toEqual({ px: 11 });
    // The next flush: both keys at most, whatever was marked.
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    expect(writes.puts.length).toBeLessThanOrEqual(2);
    expect(writes.puts).toContain(ENTRIES_KEY);
    const kv = JSON.parse((await env.CACHE_DO_KV.get(ENTRIES_KEY, "text"))!);
    expect(entryOf(kv, "quote:B")).toMatchObject({ value: { px: 2 }, freshUntil: t0 + 60_000 });
    // SQLite: a restarted DO still has quote:B stale.
    await abortAllDurableObjects();
    expect(await service().get("quote:B")).toMatchObject({ found: true, stale: true, value: { px: 2 } });
    expect(await service().get("fx:C")).toMatchObject({ found: true, value: { px: 3 } });
    expect((await service().get("fx:C")).stale).toBeUndefined();
  });

  it("hard through CacheService.deletePrefix (and the client): gone from memory, SQLite and, with the next flush (2 KV writes), KV", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    const writes = await flushedCache(t0, setClock);
    const client = createCacheClient(service(), { log: () => {} });
    expect(await client.deletePrefix("quote:")).toBe(2);
    expect(await service().get("quote:A")).toMatchObject({ found: false });
    expect(await keysNow()).toEqual(["fx:C"]);
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    expect(writes.puts.length).toBeLessThanOrEqual(2);
    expect(JSON.parse((await env.CACHE_DO_KV.get(ENTRIES_KEY, "text"))!).entries.map(([k]: [string]) => k)).toEqual(["fx:C"]);
    await abortAllDurableObjects();
    expect(await keysNow()).toEqual(["fx:C"]);
    expect(await service().deletePrefix("quote:", { mode: "hard" })).toMatchObject({ ok: true, mode: "hard", count: 0 });
    expect(await service().deletePrefix("fx:", { soft: true })).toMatchObject({ ok: true, mode: "soft", count: 1 });
  });

  it("a prefix is checked once, the same way for RPC and HTTP: '.' is a prefix like any other; over 512 bytes is refused", async () => {
    await putJson(entryPath(".cfg"), { value: 1 });
    await putJson(entryPath("..cfg"), { value: 2 });
    await putJson(entryPath("keep"), { value: 3 });
    expect(await service().deletePrefix("..")).toMatchObject({ ok: true, count: 1 });
    expect(await service().deletePrefix(".")).toMatchObject({ ok: true, count: 1 });
    expect(await keysNow()).toEqual(["keep"]);
    const long = "p".repeat(513);
    expect(await service().deletePrefix(long)).toMatchObject({ ok: false, error: expect.stringMatching(/512 bytes/) });
    expect((await apiJson(`/api/v1/cache/entries?prefix=${long}`, { method: "DELETE" })).status).toBe(400);
  });

  it("refuses an empty prefix, an unknown mode and contradictory options; the flag off refuses it (read-only)", async () => {
    await putJson(entryPath("quote:A"), { value: 1 });
    expect((await apiJson("/api/v1/cache/entries?prefix=quote%3A&mode=gentle", { method: "DELETE" })).status).toBe(400);
    expect(await service().deletePrefix("")).toMatchObject({ ok: false, error: expect.stringMatching(/prefix/) });
    expect(await service().deletePrefix("q", { mode: "gentle" as "soft" })).toMatchObject({ ok: false, error: expect.stringMatching(/mode/) });
    expect(await service().deletePrefix("q", { mode: "hard", soft: true })).toMatchObject({ ok: false, error: expect.stringMatching(/contradicts/) });
    const flagOff = new CacheService(createExecutionContext(), { ...env, FEATURE_FLAG_DO_CACHE: "false" });
    expect(await flagOff.deletePrefix("quote:")).toMatchObject({ ok: false, error: expect.stringMatching(/read-only/) });
    expect(await createCacheClient(undefined, { log: () => {} }).deletePrefix("quote:")).toBeNull();
    expect(await keysNow()).toEqual(["quote:A"]);
  });
});

describe("purge by prefix: the destructive route refuses what it would not honour (issue 15 review)", () => {
  const service = () => exports.CacheService as unknown as CacheServiceBinding;
  const del = (query: string) => apiJson(`/api/v1/cache/entries?${query}`, { method: "DELETE" });

  it("unknown or repeated query parameters are a 400 and delete nothing: soft=true says use mode=soft", async () => {
    for (const key of ["quote:A", "quote:B"]) await putJson(entryPath(key), { value: 1 });
    const soft = await del("prefix=quote%3A&soft=true");
    expect(soft.status).toBe(400);
    expect(soft.body.error.message).toMatch(/use mode=soft/);
    for (const query of ["prefix=quote%3A&mode=hard&mode=soft", "prefix=quote%3A&prefix=x", "prefix=quote%3A&dryRun=1", "prefix=quote%3A&Mode=soft"]) {
      const r = await del(query);
      expect(r.status, query).toBe(400);
      expect(r.body.error.code).toBe("bad_request");
    }
    expect(await keysNow()).toEqual(["quote:A", "quote:B"]);
    expect((await del("prefix=quote%3A&mode=soft")).body.data).toMatchObject({ mode: "soft", marked: 2 });
  });

  it("one prefix check for HTTP and the DO: non-empty, at most 512 bytes of UTF-8, any characters ('.' included)", async () => {
    for (const key of ["..x", ".y", "z"]) await putJson(entryPath(key), { value: 1 });
    const long = "é".repeat(257); // 514 bytes
    const http = await del(`prefix=${encodeURIComponent(long)}`);
    expect(http.status).toBe(400);
    expect(http.body.error.message).toMatch(/512 bytes/);
    expect(await cacheStub().purgePrefix(long, "hard")).toMatchObject({ ok: false, status: 400, message: expect.stringMatching(/512 bytes/) });
    expect((await del(`prefix=${encodeURIComponent("é".repeat(256))}`)).status).toBe(200); // exactly 512 bytes
    expect(await cacheStub().purgePrefix("..", "hard")).toMatchObject({ ok: true, data: { deleted: 1 } });
    expect((await del("prefix=.")).body.data).toMatchObject({ prefix: ".", deleted: 1 });
    expect(await keysNow()).toEqual(["z"]);
    expect(await cacheStub().purgePrefix("", "hard")).toMatchObject({ ok: false, status: 400 });
  });

  it("a hard purge counts the entries a listing shows, and still removes the rows stale-if-error keeps", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    await service().getOrSet("quote:OLD", () => ({ px: 1 }), { ttlSeconds: 10, staleIfErrorSeconds: 600 });
    await service().set("quote:A", 1, { ttlSeconds: 3600 });
    await service().set("quote:B", 2, { ttlSeconds: 3600 });
    await setClock(t0 + 20_000); // quote:OLD expired: kept for stale-if-error, invisible
    expect((await apiJson("/api/v1/cache/entries?prefix=quote%3A")).body.data.keys.map((k: { key: string }) => k.key)).toEqual(["quote:A", "quote:B"]);
    const r = await del("prefix=quote%3A");
    expect(r.body.data).toEqual({ prefix: "quote:", deleted: 2, generation: expect.any(Number) }); // no mode: a hard purge
    const fails = () => Promise.reject(new Error("vendor down"));
    expect(await service().getOrSet("quote:OLD", fails, { ttlSeconds: 10, staleIfErrorSeconds: 600 })).toMatchObject({ ok: false, code: "loader_failed" });
    expect((await snapshotNow()).entries).toEqual([]);
  });

  it("contradictory deletePrefix options are refused: mode soft with soft false, as mode hard with soft true", async () => {
    await putJson(entryPath("quote:A"), { value: 1 });
    expect(await service().deletePrefix("quote:", { mode: "soft", soft: false })).toMatchObject({ ok: false, error: expect.stringMatching(/contradicts/) });
    expect(await keysNow()).toEqual(["quote:A"]);
    expect(await service().deletePrefix("quote:", { mode: "soft", soft: true })).toMatchObject({ ok: true, mode: "soft", count: 1 });
  });
});

describe("restore: stage, then swap", () => {
  async function fileOf(values: Record<string, unknown>, expiresAt: number) {
    const entries: Array<[string, SnapshotEntry]> = Object.entries(values).map(([key, value], i) => [key, { value, expiresAt, lastAccessed: expiresAt - 1e6 + i, cachedAt: expiresAt - 2e6 }]);
    return { entries, digest: await digestEntries(entries) };
  }

  it("stages in chunks invisible to the cache, then replaces its whole contents in one step", async () => {
    const now = futureNoon();
    await fakeClock(now);
    await putJson(entryPath("old"), { value: "before" });
    const file = await fileOf({ a: { px: 1 }, b: [1, 2], c: "three" }, now + 3_600_000);
    expect((await postJson("/api/v1/cache/restore", { stage: "s1", entries: file.entries.slice(0, 2) })).body.data).toEqual({ stage: "s1", staged: 2 });
    expect((await postJson("/api/v1/cache/restore", { stage: "s1", entries: file.entries.slice(2) })).body.data).toEqual({ stage: "s1", staged: 3 });
    expect(await keysNow()).toEqual(["old"]); // nothing visible yet
    const done = await postJson("/api/v1/cache/restore", { stage: "s1", commit: { digest: file.digest, count: 3 } });
    expect(done.status).toBe(200);
    expect(done.body.data).toMatchObject({ restored: 3, skippedExpired: 0, evicted: 0, digest: file.digest });
    const snap = await snapshotNow();
    expect(snap.digest).toBe(file.digest);
    expect(snap.entries.map((e: [string]) => e[0])).toEqual(["a", "b", "c"]);
    expect(snap.entries[0][1]).toMatchObject({ value: { px: 1 }, expiresAt: now + 3_600_000 });
  });

  it("a digest or count that does not match changes nothing; a discarded or unknown stage is a conflict", async () => {
    const now = futureNoon();
    await fakeClock(now);
    await putJson(entryPath("keep"), { value: 1 });
    const before = (await snapshotNow()).digest;
    const file = await fileOf({ a: 1, b: 2 }, now + 3_600_000);
    await postJson("/api/v1/cache/restore", { stage: "s2", entries: file.entries.slice(0, 1) }); // interrupted upload
    const short = await postJson("/api/v1/cache/restore", { stage: "s2", commit: { digest: file.digest, count: 2 } });
    expect(short.status).toBe(400);
    expect(short.body.error.message).toMatch(/stage holds 1 entries; the file has 2/);
    await postJson("/api/v1/cache/restore", { stage: "s2", entries: file.entries.slice(1) });
    const tampered = await postJson("/api/v1/cache/restore", { stage: "s2", commit: { digest: `sha256:${"0".repeat(64)}`, count: 2 } });
    expect(tampered.status).toBe(400);
    expect(tampered.body.error.message).toMatch(/nothing was changed/);
    expect((await snapshotNow()).digest).toBe(before);
    expect((await apiJson("/api/v1/cache/restore/s2", { method: "DELETE" })).body.data).toEqual({ stage: "s2", discarded: 2 });
    const gone = await postJson("/api/v1/cache/restore", { stage: "s2", commit: { digest: file.digest, count: 2 } });
    expect(gone.status).toBe(409);
    expect(gone.body.error.code).toBe("conflict");
    expect((await snapshotNow()).digest).toBe(before);
  });

  it("skips expired entries, applies the bounds, and discards stages left for an hour", async () => {
    const now = futureNoon();
    const setClock = await fakeClock(now);
    const file = await fileOf({ live: 1 }, now + 60_000);
    const expired = await fileOf({ dead: 1 }, now - 1);
    const entries = [...file.entries, ...expired.entries];
    await postJson("/api/v1/cache/restore", { stage: "s3", entries });
    const r = await postJson("/api/v1/cache/restore", { stage: "s3", commit: { digest: await digestEntries(entries), count: 2 } });
    expect(r.body.data).toMatchObject({ restored: 1, skippedExpired: 1 });
    // An abandoned stage is discarded by the alarm after an hour.
    await postJson("/api/v1/cache/restore", { stage: "abandoned", entries: file.entries });
    await setClock(now + 3_600_000 + 1);
    await runDurableObjectAlarm(cacheStub());
    const late = await postJson("/api/v1/cache/restore", { stage: "abandoned", commit: { digest: file.digest, count: 1 } });
    expect(late.status).toBe(409);
  });

  it("rejects bad stage ids and bad entries, staging nothing", async () => {
    expect((await postJson("/api/v1/cache/restore", { stage: "../x", entries: [] })).status).toBe(400);
    const bad = await postJson("/api/v1/cache/restore", { stage: "s4", entries: [["ok", { value: 1, expiresAt: 1, lastAccessed: 1, cachedAt: 1 }], ["", { value: 1, expiresAt: 1, lastAccessed: 1, cachedAt: 1 }], ["k", { value: 1 }]] });
    expect(bad.status).toBe(400);
    expect(bad.body.error.details.rejects.map((r: { index: number }) => r.index)).toEqual([1, 2]);
    expect((await apiJson("/api/v1/cache/restore/s4", { method: "DELETE" })).body.data.discarded).toBe(0);
  });
});
