import { describe, expect, it } from "vitest";
import { MAX_BODY_BYTES, snapshotEntryBytes } from "../../protocol/index.js";
import { REQUEST_MAX_BYTES, firstInvalidUtf8 } from "../../cli/input.js";
import { cli, json, mockAgent, ok, target, tempDir } from "./harness.js";
import { emptyMetadata } from "./fixtures.js";

const WORKER = "http://worker.test";

/** A Worker that answers /metadata with `meta` and records every seed body; `evicted` per batch as the Worker would say. */
function seedWorker(meta = emptyMetadata(), evictedPerBatch: (n: number, i: number) => number = () => 0) {
  const agent = mockAgent();
  const w = agent.get(WORKER);
  w.intercept({ path: "/api/v1/cache/metadata", method: "GET" }).reply(200, ok(meta), json);
  const bodies: string[] = [];
  w.intercept({ path: "/api/v1/cache/seed", method: "POST" })
    .reply(200, (opts) => {
      const body = String(opts.body);
      bodies.push(body);
      const n = JSON.parse(body).entries.length;
      return ok({ applied: n, generation: bodies.length + 1, evicted: evictedPerBatch(n, bodies.length - 1) });
    }, json)
    .persist();
  return { agent, bodies, w };
}

const big = (n: number, bytes: number, prefix = "k") => Array.from({ length: n }, (_, i) => JSON.stringify({ key: `${prefix}${String(i).padStart(5, "0")}`, value: { pad: "x".repeat(bytes) } })).join("\n");

describe("seed at any size", () => {
  it("1,500 entries of 12 KB with default flags: every request stays under 4 MiB (far below the 10 MiB limit) and all are sent", async () => {
    const dir = tempDir({ "big.ndjson": big(1500, 12_000) });
    const { agent, bodies } = seedWorker(emptyMetadata({ maxEntries: 10_000 }));
    const r = await cli([...target, "seed", "big.ndjson", "--ttl", "600"], { agent, cwd: dir });
    expect(r.code).toBe(0);
    expect(REQUEST_MAX_BYTES).toBeLessThanOrEqual(MAX_BODY_BYTES / 2);
    for (const b of bodies) expect(Buffer.byteLength(b)).toBeLessThanOrEqual(REQUEST_MAX_BYTES);
    expect(bodies.length).toBeGreaterThanOrEqual(5); // 18 MB in ≤ 4 MiB requests, not 2 requests of 12 MB
    expect(bodies.flatMap((b) => JSON.parse(b).entries.map((e: { key: string }) => e.key))).toHaveLength(1500);
    expect(r.stdout).toMatch(/^seeded 1500 entries$/m);
    expect(r.stderr).toMatch(new RegExp(`sending 1500 entries in ${bodies.length} batches of up to 1000…`));
  });

  it("--batch still caps the count", async () => {
    const { agent, bodies } = seedWorker();
    const r = await cli([...target, "seed", "-", "--batch", "3"], { agent, stdin: big(7, 10) });
    expect(r.code).toBe(0);
    expect(bodies.map((b) => JSON.parse(b).entries.length)).toEqual([3, 3, 1]);
  });

  it("refuses (exit 2) a seed that would evict at once, naming the bound, and sends nothing", async () => {
    const dir = tempDir({ "in.ndjson": big(1500, 10) });
    const { agent, bodies } = seedWorker(emptyMetadata({ maxEntries: 1000 }));
    const r = await cli([...target, "seed", "in.ndjson"], { agent, cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refusing to seed 1500 entries: the input alone holds 1,500 entries, over the cache's bound of 1,000 \(CACHE_MAX_ENTRIES\)/);
    expect(r.stderr).toMatch(/--allow-eviction/);
    expect(bodies).toEqual([]);
  });

  it("counts what is already cached, and the byte bound (CACHE_MAX_BYTES)", async () => {
    const input = big(10, 1000);
    const cost = input.split("\n").reduce((n, line) => n + snapshotEntryBytes(JSON.parse(line).key, JSON.stringify(JSON.parse(line).value)), 0);
    // Entries: 995 cached + 10 new > 1000 (none of the 10 keys is cached: the keys are listed to check).
    const full = seedWorker(emptyMetadata({ maxEntries: 1000 }, { size: 995, bytes: 10_000 }));
    full.w.intercept({ path: (p) => p.startsWith("/api/v1/cache/entries?"), method: "GET" }).reply(200, ok({ keys: [{ key: "other", expiresAt: Date.now() + 1e6, size: 100 }], cursor: null }), json);
    // A seed that fits but fills the cache evicts older entries, as any write to a full LRU does: it goes ahead,
    // said beforehand. (Refusing it would fail every recurring seed job once the cache is full.)
    const r1 = await cli([...target, "seed", "-"], { agent: full.agent, stdin: input });
    expect(r1.code).toBe(0);
    expect(r1.stderr).toMatch(/the cache would hold 1,005 entries, over the cache's bound of 1,000 \(CACHE_MAX_ENTRIES\): the least recently used entries will be evicted/);
    expect(full.bodies).toHaveLength(1);
    // Bytes: the input alone costs more than CACHE_MAX_BYTES: it would evict its own entries, so it is refused.
    const small = seedWorker(emptyMetadata({ maxBytes: cost - 1 }));
    const r2 = await cli([...target, "seed", "-"], { agent: small.agent, stdin: input });
    expect(r2.code).toBe(2);
    expect(r2.stderr).toMatch(new RegExp(`\\(${cost.toLocaleString("en-US")} bytes as the KV snapshot counts them\\), over the cache's bound of .* \\(CACHE_MAX_BYTES\\)`));
  });

  it("keys the seed replaces do not count twice: a full cache can be re-seeded with its own keys", async () => {
    const input = big(10, 10);
    const keys = input.split("\n").map((l) => ({ key: JSON.parse(l).key as string, expiresAt: Date.now() + 1e6, size: 120 }));
    const { agent, bodies, w } = seedWorker(emptyMetadata({ maxEntries: 1000 }, { size: 1000, bytes: 120_000 }));
    w.intercept({ path: (p) => p.startsWith("/api/v1/cache/entries?"), method: "GET" }).reply(200, ok({ keys, cursor: null }), json);
    const r = await cli([...target, "seed", "-"], { agent, stdin: input });
    expect(r.code).toBe(0);
    expect(bodies).toHaveLength(1);
  });

  it("--allow-eviction sends it anyway and the summary says how many entries the bounds evicted", async () => {
    const { agent, bodies } = seedWorker(emptyMetadata({ maxEntries: 1000 }), (n, i) => (i === 1 ? 500 : 0));
    const r = await cli([...target, "seed", "-", "--allow-eviction"], { agent, stdin: big(1500, 10) });
    expect(r.code).toBe(0);
    expect(bodies).toHaveLength(2);
    expect(r.stderr).toMatch(/warning: the input alone holds 1,500 entries, over the cache's bound of 1,000 \(CACHE_MAX_ENTRIES\): the least recently used entries will be evicted/);
    expect(r.stdout).toMatch(/^seeded 1500 entries, 500 evicted by the cache's bounds \(CACHE_MAX_ENTRIES 1000, CACHE_MAX_BYTES 20971520\)$/m);
    const asJson = seedWorker(emptyMetadata({ maxEntries: 1000 }), (n, i) => (i === 1 ? 500 : 0));
    const j = await cli([...target, "--json", "seed", "-", "--allow-eviction"], { agent: asJson.agent, stdin: big(1500, 10) });
    expect(JSON.parse(j.stdout)).toMatchObject({ written: 1500, evicted: 500 });
  });

  it("an entry that costs more than CACHE_MAX_BYTES is rejected by index, the rest sent", async () => {
    const { agent, bodies } = seedWorker(emptyMetadata({ maxBytes: 5000 }));
    const r = await cli([...target, "seed", "-"], { agent, stdin: JSON.stringify([{ key: "huge", value: "x".repeat(6000) }, { key: "ok", value: 1 }]) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/rejected entry 0 \("huge"\): entry costs \d+ bytes in the KV snapshot, more than the cache holds at all \(CACHE_MAX_BYTES 5000\)/);
    expect(JSON.parse(bodies[0]!).entries.map((e: { key: string }) => e.key)).toEqual(["ok"]);
  });
});

describe("seed input encoding", () => {
  it("rejects invalid UTF-8 with the line and byte offset, and sends nothing (café must not become caf\uFFFD)", async () => {
    const bytes = Buffer.concat([Buffer.from('{"key":"a","value":1}\n{"key":"b","value":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]);
    const dir = tempDir();
    const { writeFileSync } = await import("node:fs");
    writeFileSync(`${dir}/latin1.ndjson`, bytes);
    const { agent, bodies } = seedWorker();
    const r = await cli([...target, "seed", "latin1.ndjson"], { agent, cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: latin1\.ndjson: invalid UTF-8 at line 2, byte 24 of that line \(byte offset 45 in the input\): 0xe9$/m);
    expect(bodies).toEqual([]);
    const dry = await cli([...target, "seed", "latin1.ndjson", "--dry-run"], { agent: mockAgent(), cwd: dir });
    expect(dry.code).toBe(2);
    expect(dry.stderr).toMatch(/invalid UTF-8 at line 2/);
  });

  it("skips a UTF-8 BOM: the first NDJSON line is kept", async () => {
    const { agent, bodies } = seedWorker();
    const r = await cli([...target, "seed", "-"], { agent, stdin: `\uFEFF{"key":"first","value":1}\n{"key":"second","value":2}\n` });
    expect(r.code).toBe(0);
    expect(JSON.parse(bodies[0]!).entries.map((e: { key: string }) => e.key)).toEqual(["first", "second"]);
  });

  it("finds the first invalid byte: overlong forms, surrogates, truncated sequences", () => {
    expect(firstInvalidUtf8(Buffer.from("café ✓ 𝄞"))).toBe(-1);
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xc0, 0x80]))).toBe(1); // overlong NUL
    expect(firstInvalidUtf8(Buffer.from([0x61, 0xed, 0xa0, 0x80]))).toBe(1); // UTF-16 surrogate
    expect(firstInvalidUtf8(Buffer.from([0x61, 0x62, 0xe2, 0x82]))).toBe(2); // cut short
    expect(firstInvalidUtf8(Buffer.from([0xf4, 0x90, 0x80, 0x80]))).toBe(0); // above U+10FFFF
  });

  it("an NDJSON line with expiresAt (what export --ndjson writes) seeds with the remaining TTL; an expired one is skipped", async () => {
    const { agent, bodies } = seedWorker();
    const future = Date.now() + 100_000;
    const r = await cli([...target, "seed", "-"], { agent, stdin: `{"key":"live","value":1,"expiresAt":${future},"cachedAt":1,"lastAccessed":1}\n{"key":"gone","value":2,"expiresAt":1}\n` });
    expect(r.code).toBe(0);
    const sent = JSON.parse(bodies[0]!).entries;
    expect(sent.map((e: { key: string }) => e.key)).toEqual(["live"]);
    expect(sent[0].ttlSeconds).toBeGreaterThan(90);
    expect(sent[0].ttlSeconds).toBeLessThanOrEqual(100);
    expect(r.stdout).toMatch(/seeded 1 entry, 1 expired skipped/);
  });
});
