import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { ENTRIES_KEY, MAX_BODY_BYTES, snapshotEntryBytes } from "../../protocol/index.js";
import { handleRequest } from "../../worker/index.js";
import { ADMIN_KEY, BASE, api, apiJson, entryPath, freshState, postJson, putJson } from "./helpers.js";
import { writeKvSnapshot } from "./kv-fixtures.js";

beforeEach(freshState);

async function expectError(res: Response | Promise<Response>, status: number, code: string) {
  const r = await res;
  expect(r.status).toBe(status);
  expect(r.headers.get("content-type")).toMatch(/application\/json/);
  const body = (await r.json()) as any;
  expect(body).toEqual({ success: false, error: { code, message: expect.any(String), ...(body.error.details ? { details: body.error.details } : {}) } });
  expect(body.error.message).not.toMatch(/\n\s+at /); // no stack trace
  return body.error;
}

describe("happy paths of every route", () => {
  it("PUT, GET, DELETE an entry with a percent-encoded key", async () => {
    const key = "quote/ÄAPL?x=1&y=2 #1";
    const put = await putJson(entryPath(key), { value: { bid: 1.5, ask: 1.6 }, ttlSeconds: 120 });
    expect(put.status).toBe(200);
    expect(put.body.data).toMatchObject({ key, generation: 1, expiresAt: expect.any(Number) });
    const got = await apiJson(entryPath(key));
    expect(got.body.data).toEqual({ key, value: { ask: 1.6, bid: 1.5 }, expiresAt: put.body.data.expiresAt, cachedAt: expect.any(Number), lastAccessed: expect.any(Number) });
    const del = await apiJson(entryPath(key), { method: "DELETE" });
    expect(del.body.data).toEqual({ key, generation: 2 });
    await expectError(api(entryPath(key), { method: "DELETE" }), 404, "not_found");
  });

  it("GET /entries pages through keys by prefix with a cursor", async () => {
    const entries = ["b:2", "a:1", "a:3", "a:2", "c:1"].map((key) => ({ key, value: key }));
    await postJson("/api/v1/cache/seed", { entries });
    const p1 = (await apiJson("/api/v1/cache/entries?prefix=a:&limit=2")).body.data;
    expect(p1.keys.map((k: any) => k.key)).toEqual(["a:1", "a:2"]);
    expect(p1.keys[0]).toEqual({ key: "a:1", expiresAt: expect.any(Number), size: expect.any(Number) });
    const p2 = (await apiJson(`/api/v1/cache/entries?prefix=a:&limit=2&cursor=${encodeURIComponent(p1.cursor)}`)).body.data;
    expect(p2).toEqual({ keys: [expect.objectContaining({ key: "a:3" })], cursor: null });
    const all = (await apiJson("/api/v1/cache/entries")).body.data;
    expect(all.keys).toHaveLength(5);
    expect(all.cursor).toBeNull();
  });

  it("POST /seed applies a batch atomically and can flush", async () => {
    const res = await postJson("/api/v1/cache/seed", { entries: [{ key: "x", value: 1 }, { key: "y", value: [2], ttlSeconds: 30 }], flush: true });
    expect(res.body.data).toMatchObject({ applied: 2, generation: 1, evicted: 0, flush: { written: true, generation: 1 } });
    expect(await env.CACHE_DO_KV.get(ENTRIES_KEY)).not.toBeNull();
  });

  it("GET /stats and /metadata describe the cache without secrets", async () => {
    await putJson(entryPath("k"), { value: "v" });
    const stats = (await apiJson("/api/v1/cache/stats")).body.data;
    // bytes: what the entry costs in the KV snapshot (JSON-escaped key, value, per-entry fields)
    expect(stats).toMatchObject({ size: 1, bytes: snapshotEntryBytes("k", '"v"'), hits: 0, misses: 0, evictions: 0, expirations: 0, generation: 1 });
    expect(stats.kv).toEqual({
      lastFlushAt: null,
      lastError: null,
      pendingSince: expect.any(Number),
      writesToday: 0,
      budget: 40,
      mode: "coalesced",
      flushedGeneration: null,
      nextAttemptAt: null,
      writable: true,
      failures: 0,
      pacing: expect.objectContaining({ baseIntervalMs: 10_000, reserve: 2, burst: 2, paced: false, nextFlushAt: expect.any(Number) }),
    });
    const meta = (await apiJson("/api/v1/cache/metadata")).body;
    expect(meta.data).toMatchObject({
      generation: 1,
      digest: expect.stringMatching(/^sha256:/),
      limits: { maxEntries: 1000, maxBytes: 2097152, maxValueBytes: 1048576, maxKeyBytes: 512, maxSeedEntries: 10000 },
      config: { syncMode: "coalesced", dailyWriteBudget: 40, featureFlagDoCache: true },
      load: { source: "empty" },
    });
    expect(JSON.stringify(meta)).not.toContain(ADMIN_KEY);
  });

  it("GET /snapshot is the do_cache_entries format", async () => {
    await putJson(entryPath("k"), { value: { b: 1, a: 2 } });
    const snap = (await apiJson("/api/v1/cache/snapshot")).body.data;
    expect(snap).toEqual({ format: 1, generation: 1, writtenAt: expect.any(Number), digest: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), entries: [["k", { value: { a: 2, b: 1 }, expiresAt: expect.any(Number), lastAccessed: expect.any(Number), cachedAt: expect.any(Number) }]] });
  });

  it("DELETE /api/v1/cache rejects an unknown scope", async () => {
    await expectError(api("/api/v1/cache?scope=everything", { method: "DELETE" }), 400, "bad_request");
  });

  it("/health reveals no configuration", async () => {
    const res = await apiJson("/health", { key: null });
    expect(Object.keys(res.body.data).sort()).toEqual(["status", "version"]);
  });
});

describe("authentication", () => {
  it("accepts X-API-KEY and Authorization: Bearer", async () => {
    expect((await api("/api/v1/cache/stats")).status).toBe(200);
    expect((await api("/api/v1/cache/stats", { key: null, headers: { authorization: `Bearer ${ADMIN_KEY}` } })).status).toBe(200);
  });

  it.each([
    ["no key", {}],
    ["an empty key", { "x-api-key": "" }],
    ["a wrong key", { "x-api-key": "nope" }],
    ["a prefix of the key", { "x-api-key": ADMIN_KEY.slice(0, -1) }],
    ["the key plus a suffix", { "x-api-key": `${ADMIN_KEY}x` }],
    ["the key in another case", { "x-api-key": ADMIN_KEY.toUpperCase() }],
    ["the key with its last character changed", { "x-api-key": `${ADMIN_KEY.slice(0, -1)}${ADMIN_KEY.endsWith("9") ? "8" : "9"}` }],
    ["the key with a non-ASCII character in place of its last", { "x-api-key": `${ADMIN_KEY.slice(0, -1)}é` }],
    ["a Basic header", { authorization: `Basic ${btoa(`admin:${ADMIN_KEY}`)}` }],
  ])("refuses %s with 401 on every admin route, before revealing which paths exist", async (_, headers) => {
    for (const [method, path] of [["GET", "/api/v1/cache/stats"], ["PUT", "/api/v1/cache/entries/k"], ["DELETE", "/api/v1/cache"], ["GET", "/api/v1/cache/nope"]] as const) {
      const res = await api(path, { method, key: null, headers, ...(method === "PUT" ? { body: '{"value":1}' } : {}) });
      const err = await expectError(res, 401, "unauthorized");
      expect(err.message).not.toContain(ADMIN_KEY);
    }
    expect((await apiJson("/api/v1/cache/stats")).body.data.size).toBe(0);
  });

  it("fails closed with 503 admin_disabled when ADMIN_API_KEY is unset", async () => {
    const disabled = { ...env, ADMIN_API_KEY: undefined };
    for (const path of ["/api/v1/cache/stats", "/api/v1/cache/entries/k", "/api/v1/cache", "/api/v1/cache/snapshot"]) {
      await expectError(handleRequest(new Request(`${BASE}${path}`, { headers: { "x-api-key": "" } }), disabled), 503, "admin_disabled");
      await expectError(handleRequest(new Request(`${BASE}${path}`, { headers: { "x-api-key": "anything" } }), disabled), 503, "admin_disabled");
    }
    expect((await handleRequest(new Request(`${BASE}/health`), disabled)).status).toBe(200);
  });
});

describe("bad input: clear errors, nothing changed", () => {
  const stateAfter = async () => (await apiJson("/api/v1/cache/snapshot")).body.data.digest;

  it("rejects each kind of bad request with the right code and leaves the cache as it was", async () => {
    await putJson(entryPath("keep"), { value: 1 });
    const before = await stateAfter();
    const cases: Array<[string, RequestInit & { path?: string }, number, string]> = [
      ["malformed JSON", { method: "PUT", body: '{"value": ' }, 400, "bad_request"],
      ["a body without value", { method: "PUT", body: '{"ttlSeconds": 5}' }, 400, "bad_request"],
      ["a JSON array body", { method: "PUT", body: "[1,2]" }, 400, "bad_request"],
      ["an empty body", { method: "PUT", body: "" }, 400, "bad_request"],
      ["a negative TTL", { method: "PUT", body: '{"value":1,"ttlSeconds":-5}' }, 400, "bad_request"],
      ["a string TTL", { method: "PUT", body: '{"value":1,"ttlSeconds":"60"}' }, 400, "bad_request"],
      ["a key over 512 bytes", { method: "PUT", body: '{"value":1}', path: entryPath("k".repeat(513)) }, 400, "bad_request"],
      ["a malformed percent-encoding", { method: "PUT", body: '{"value":1}', path: "/api/v1/cache/entries/%E0%A4%A" }, 400, "bad_request"],
      ["a value over 1 MiB", { method: "PUT", body: JSON.stringify({ value: "v".repeat(1024 * 1024) }) }, 413, "too_large"],
      ["invalid UTF-8", { method: "PUT", body: new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]) }, 400, "bad_request"],
      ["a list limit of 0", { method: "GET", path: "/api/v1/cache/entries?limit=0" }, 400, "bad_request"],
      ["a list limit over 1000", { method: "GET", path: "/api/v1/cache/entries?limit=1001" }, 400, "bad_request"],
      ["a seed without entries", { method: "POST", body: '{"items": []}', path: "/api/v1/cache/seed" }, 400, "bad_request"],
      ["a seed with a non-boolean flush", { method: "POST", body: '{"entries": [], "flush": "yes"}', path: "/api/v1/cache/seed" }, 400, "bad_request"],
      ["an unknown path", { method: "GET", path: "/api/v1/cache/unknown" }, 404, "not_found"],
      ["a path outside the API", { method: "GET", path: "/favicon.ico" }, 404, "not_found"],
      ["a wrong method", { method: "POST", path: "/api/v1/cache/stats" }, 405, "method_not_allowed"],
      ["PATCH on an entry", { method: "PATCH", body: "{}", path: entryPath("keep") }, 405, "method_not_allowed"],
    ];
    for (const [name, init, status, code] of cases) {
      const res = await api(init.path ?? entryPath("keep"), { ...init, headers: { "content-type": "application/json" } });
      const err = await expectError(res, status, code).catch((e) => {
        throw new Error(`${name}: ${(e as Error).message}`);
      });
      expect(err.message.length, name).toBeGreaterThan(5);
    }
    expect(await stateAfter()).toBe(before);
    expect((await apiJson(entryPath("keep"))).body.data.value).toBe(1);
  });

  it("names the allowed methods on a 405", async () => {
    const res = await api("/api/v1/cache/flush", { method: "GET" });
    expect(res.headers.get("allow")).toBe("POST");
    await expectError(res, 405, "method_not_allowed");
  });

  it("answers HEAD wherever GET is allowed: the status and headers, no body", async () => {
    await putJson(entryPath("k"), { value: 1 });
    const head = await api(entryPath("k"), { method: "HEAD" });
    expect(head.status).toBe(200);
    expect(head.headers.get("content-type")).toMatch(/application\/json/);
    expect(await head.text()).toBe("");
    expect((await api(entryPath("absent"), { method: "HEAD" })).status).toBe(404);
    expect((await api("/api/v1/cache/stats", { method: "HEAD" })).status).toBe(200);
    expect((await api("/api/v1/cache/stats", { method: "POST" })).headers.get("allow")).toBe("GET, HEAD");
  });

  it("refuses a body over 10 MiB with 413, declared or streamed", async () => {
    const big = new Uint8Array(MAX_BODY_BYTES + 1024).fill(0x20);
    await expectError(api("/api/v1/cache/seed", { method: "POST", body: big }), 413, "too_large");
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        for (let i = 0; i < 11; i++) controller.enqueue(new Uint8Array(1024 * 1024).fill(0x20));
        controller.close();
      },
    });
    await expectError(api("/api/v1/cache/seed", { method: "POST", body: stream, duplex: "half" } as RequestInit), 413, "too_large");
  });

  it("rejects a whole seed with per-entry reasons when any entry is invalid, applying none", async () => {
    const entries = [
      { key: "ok1", value: 1 },
      { key: "", value: 2 },
      { key: "ok2", value: 3 },
      { key: "no-value" },
      { key: "bad-ttl", value: 1, ttlSeconds: 0 },
      "not an object",
    ];
    const err = await expectError(api("/api/v1/cache/seed", { method: "POST", body: JSON.stringify({ entries }) }), 400, "bad_request");
    expect(err.message).toMatch(/4 of 6 entries are invalid; nothing was applied/);
    expect(err.details.rejects.map((r: any) => r.index)).toEqual([1, 3, 4, 5]);
    expect(err.details.rejects[1]).toEqual({ index: 3, key: "no-value", reason: expect.stringMatching(/value/) });
    expect((await apiJson("/api/v1/cache/stats")).body.data.size).toBe(0);
  });

  it("refuses more than 10,000 entries in one seed", async () => {
    const entries = Array.from({ length: 10_001 }, (_, i) => ({ key: `k${i}`, value: 0 }));
    await expectError(api("/api/v1/cache/seed", { method: "POST", body: JSON.stringify({ entries }) }), 413, "too_large");
  });
});

describe("FEATURE_FLAG_DO_CACHE=false", () => {
  const flagOff = { ...env, FEATURE_FLAG_DO_CACHE: "false" };
  const call = (path: string, init: RequestInit = {}) =>
    handleRequest(new Request(`${BASE}${path}`, { ...init, headers: { "x-api-key": ADMIN_KEY } }), flagOff);

  it("serves reads from the KV snapshot and refuses writes", async () => {
    await writeKvSnapshot(7, { "px:AAPL": 190.1 });
    const res = await call(entryPath("px:AAPL"));
    expect(res.status).toBe(200);
    expect(((await res.json()) as any).data).toMatchObject({ value: 190.1, source: "kv" });
    expect((await call(entryPath("absent"))).status).toBe(404);
    await expectError(call(entryPath("k"), { method: "PUT", body: '{"value":1}' }), 503, "do_disabled");
    await expectError(call("/api/v1/cache/stats"), 503, "do_disabled");
  });
});
