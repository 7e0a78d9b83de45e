import { describe, expect, it } from "vitest";
import { ENTRIES_KEY, STATS_KEY, type KvStatus } from "../../protocol/index.js";
import { ADMIN_KEY, CF_TOKEN, CtrlC, KV_PATH, cli, expectNoSecrets, json, mockAgent, ok, target, tempDir } from "./harness.js";
import { emptyMetadata, liveStats, metadataFor, snapshot, statsDoc } from "./fixtures.js";

/** Mocks the Worker's /metadata + /snapshot and both KV keys. */
async function syncScenario(opts: { doValues: Record<string, unknown>; doGen: number; kvEntries?: string | null; kvStats?: string | null; pendingSince?: number | null; kv?: Partial<KvStatus> }) {
  const agent = mockAgent();
  const worker = agent.get("http://worker.test");
  const cf = agent.get("http://cf.test");
  const doSnap = await snapshot(opts.doGen, opts.doValues);
  worker.intercept({ path: "/api/v1/cache/snapshot", method: "GET" }).reply(200, ok(doSnap), json);
  const live = liveStats(opts.doGen, opts.pendingSince ?? null);
  live.kv = { ...live.kv, ...opts.kv };
  worker.intercept({ path: "/api/v1/cache/metadata", method: "GET" }).reply(200, ok(metadataFor(doSnap, { kv: live.kv })), json);
  const kvReply = (key: string, body: string | null | undefined) => {
    const i = cf.intercept({ path: `${KV_PATH}/values/${key}`, method: "GET" });
    if (body === null || body === undefined) i.reply(404, { success: false, errors: [{ code: 10009, message: "key not found" }], messages: [], result: null });
    else i.reply(200, body);
  };
  kvReply(ENTRIES_KEY, opts.kvEntries);
  kvReply(STATS_KEY, opts.kvStats);
  return agent;
}

describe("exit codes and output discipline", () => {
  it("stats --json prints exactly one JSON document on stdout and nothing else", async () => {
    const agent = mockAgent();
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET", headers: { "x-api-key": ADMIN_KEY } }).reply(200, ok(liveStats(7)), json);
    const r = await cli([...target, "--json", "stats"], { agent });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ generation: 7, hitRate: 0.75, kv: { mode: "coalesced" } });
    expect(r.stderr).toBe("");
  });

  it("stats renders a table with the KV block for humans", async () => {
    const agent = mockAgent();
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, ok(liveStats(7)), json);
    const r = await cli([...target, "stats"], { agent });
    expect(r.stdout).toMatch(/hit rate\s+│ 75\.0%/);
    expect(r.stdout).toMatch(/kv writes today\s+│ 2 \/ 1000/);
    expect(r.stdout).not.toMatch(/\x1b\[/); // not a TTY: no colour codes
  });

  it("colours a terminal, and not with NO_COLOR, --no-color or --json", async () => {
    const run = async (argv: string[], env: NodeJS.ProcessEnv = {}) => {
      const agent = mockAgent();
      agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, ok(liveStats(7)), json);
      return cli([...target, ...argv, "stats"], { agent, env, stdoutTTY: true });
    };
    expect((await run([])).stdout).toMatch(/\x1b\[/);
    expect((await run([], { NO_COLOR: "1" })).stdout).not.toMatch(/\x1b\[/);
    expect((await run(["--no-color"])).stdout).not.toMatch(/\x1b\[/);
    expect((await run(["--json"])).stdout).not.toMatch(/\x1b\[/);
  });

  it("stats --watch prints a line per interval until Ctrl-C, then exits 130", async () => {
    const agent = mockAgent();
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, ok(liveStats(7)), json).persist();
    // Ctrl-C once three data lines are out (an event, not a timer); the interval is waited through the sleep seam.
    const lines = (s: string) => s.trim().split("\n").filter(Boolean).length;
    const r = await cli([...target, "stats", "--watch", "0.5"], { agent, interruptWhen: ({ stdout }) => lines(stdout) >= 4 });
    expect(r.code).toBe(130);
    const out = r.stdout.trim().split("\n");
    expect(out[0]).toMatch(/^entries\s+bytes\s+hits\s+misses\s+hit%\s+gen\s+kv-writes\s+kv/);
    expect(out).toHaveLength(4);
    expect(out[1]).toMatch(/^1\s+10 B\s+3\s+1\s+75\.0\s+7\s+2\/1000\s+synced/);
    expect(r.sleeps).toEqual([500, 500]); // between lines, at the interval asked for; none after Ctrl-C
    const nd = await cli([...target, "--json", "stats", "--watch", "2"], { agent, interruptWhen: ({ stdout }) => lines(stdout) >= 2 });
    expect(nd.code).toBe(130);
    const ndLines = nd.stdout.trim().split("\n");
    expect(ndLines).toHaveLength(2);
    for (const line of ndLines) expect(JSON.parse(line)).toMatchObject({ generation: 7, at: expect.any(Number) });
    expect(nd.sleeps).toEqual([2000]);
  });

  it("a usage error exits 2, not commander's 1", async () => {
    expect((await cli(["stats", "--nope"])).code).toBe(2);
    expect((await cli(["frobnicate"])).code).toBe(2);
    expect((await cli(["get"])).code).toBe(2);
    expect((await cli(["--help"])).code).toBe(0);
  });

  it("names the flag and env var of a missing setting", async () => {
    const r = await cli(["stats"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--url or TFTCACHE_URL/);
    const k = await cli(["--url", "http://worker.test", "diff"]);
    expect(k.stderr).toMatch(/--api-key or TFTCACHE_API_KEY/);
  });

  it("a refused API key exits 2 with a message that says so, and no secret anywhere", async () => {
    const agent = mockAgent();
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(401, { success: false, error: { code: "unauthorized", message: "API key refused" } }, json);
    const r = await cli([...target, "--verbose", "stats"], { agent });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refused the API key/);
    expect(r.stderr.trim().split("\n")).toHaveLength(2); // error + hint
    expectNoSecrets(r);
  });

  it("HTML instead of JSON is a clear error, not a crash", async () => {
    const agent = mockAgent();
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, "<html><body>Sign in</body></html>", { headers: { "content-type": "text/html" } });
    const r = await cli([...target, "stats"], { agent });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/text\/html\): not a tftcache JSON envelope/);
    expect(r.stderr).not.toMatch(/at .*\.js:\d+/);
  });

  it("a Worker that keeps answering 500 exits 2 after retrying idempotent calls", async () => {
    const agent = mockAgent();
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(500, { success: false, error: { code: "internal_error", message: "boom" } }, json).times(4);
    const r = await cli([...target, "stats"], { agent });
    expect(r.code).toBe(2);
    expect(r.sleeps).toHaveLength(3);
    expect(r.stderr).toMatch(/boom \(HTTP 500 internal_error\)/);
  });

  it("never retries a POST (flush) on 5xx", async () => {
    const agent = mockAgent();
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/flush", method: "POST" }).reply(503, { success: false, error: { code: "unavailable", message: "try later" } }, json);
    const r = await cli([...target, "flush"], { agent });
    expect(r.code).toBe(2);
    expect(r.sleeps).toEqual([]);
  });

  it("a secret given on the command line is masked even in a network error", async () => {
    const agent = mockAgent();
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" }).replyWithError(new Error(`socket closed while sending ${ADMIN_KEY}`));
    const r = await cli([...target, "stats"], { agent });
    expect(r.code).toBe(2);
    expectNoSecrets(r);
  });
});

describe("get", () => {
  it("prints the value, exits 1 when absent", async () => {
    const agent = mockAgent();
    const w = agent.get("http://worker.test");
    w.intercept({ path: "/api/v1/cache/entries/quote%3AAAPL", method: "GET" }).reply(200, ok({ key: "quote:AAPL", value: { bid: 1 }, expiresAt: Date.now() + 1000, cachedAt: 1, lastAccessed: 1 }), json);
    w.intercept({ path: "/api/v1/cache/entries/nope", method: "GET" }).reply(404, { success: false, error: { code: "not_found", message: "no entry" } }, json);
    const found = await cli([...target, "get", "quote:AAPL"], { agent });
    expect(found.code).toBe(0);
    expect(JSON.parse(found.stdout)).toEqual({ bid: 1 });
    const missing = await cli([...target, "get", "nope"], { agent });
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/not found/);
  });

  it("--from kv reads the snapshot through Cloudflare's API", async () => {
    const agent = mockAgent();
    agent.get("http://cf.test").intercept({ path: `${KV_PATH}/values/${ENTRIES_KEY}`, method: "GET" }).reply(200, JSON.stringify(await snapshot(3, { k: [1, 2] })));
    const r = await cli([...target, "--json", "get", "k", "--from", "kv"], { agent });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ key: "k", value: [1, 2], source: "kv", found: true });
  });
});

describe("diff and verify-kv", () => {
  it("verify-kv exits 0 when KV equals the DO", async () => {
    const snap = await snapshot(5, { a: 1, b: { x: 2 } });
    const agent = await syncScenario({ doValues: { a: 1, b: { x: 2 } }, doGen: 5, kvEntries: JSON.stringify(snap), kvStats: JSON.stringify(statsDoc(5, 2)) });
    const r = await cli([...target, "verify-kv"], { agent });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/verify-kv: OK/);
  });

  it("classifies every key: = ~ + -", async () => {
    const kv = await snapshot(5, { same: 1, changed: "old", gone: true });
    const agent = await syncScenario({ doValues: { same: 1, changed: "new", added: [1] }, doGen: 5, kvEntries: JSON.stringify(kv) });
    const r = await cli([...target, "diff", "--all"], { agent });
    expect(r.code).toBe(1);
    expect(r.stdout.trim().split("\n")).toEqual(["+ added", "~ changed  (value)", "- gone", "= same"]);
    expect(r.stderr).toMatch(/1 match \(=\), 1 differ \(~\), 1 only in DO \(\+\), 1 only in KV \(-\)/);
  });

  it("diff --json has the contract's summary shape", async () => {
    const kv = await snapshot(5, { a: 1 });
    const agent = await syncScenario({ doValues: { a: 2 }, doGen: 5, kvEntries: JSON.stringify(kv) });
    const r = await cli([...target, "--json", "diff"], { agent });
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ status: "drift", counts: { match: 0, differ: 1, onlyInDo: 0, onlyInKv: 0 }, items: [{ key: "a", status: "differ", fields: ["value"] }], kv: { entries: { state: "present" } } });
    expect(r.code).toBe(1);
  });

  it("a torn snapshot is drift even when the entries happen to match", async () => {
    const kv = await snapshot(5, { a: 1 });
    kv.digest = `sha256:${"0".repeat(64)}`;
    const agent = await syncScenario({ doValues: { a: 1 }, doGen: 5, kvEntries: JSON.stringify(kv), kvStats: JSON.stringify(statsDoc(5, 1)) });
    const r = await cli([...target, "verify-kv"], { agent });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/torn: digest mismatch/);
  });

  it("an unreadable KV value is drift, reported as unreadable", async () => {
    const agent = await syncScenario({ doValues: { a: 1 }, doGen: 5, kvEntries: "garbage{{", kvStats: JSON.stringify(statsDoc(5, 1)) });
    const r = await cli([...target, "verify-kv"], { agent });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/do_cache_entries is unreadable/);
  });

  it("a missing stats key, or one that contradicts the entries, is drift; an older one is not", async () => {
    const kv = JSON.stringify(await snapshot(5, { a: 1 }));
    const missing = await cli([...target, "verify-kv"], { agent: await syncScenario({ doValues: { a: 1 }, doGen: 5, kvEntries: kv, kvStats: null }) });
    expect(missing.code).toBe(1);
    expect(missing.stdout).toMatch(/do_cache_stats is missing/);
    // do_cache_stats rides every tenth flush: describing an older generation is expected.
    const older = await cli([...target, "verify-kv"], { agent: await syncScenario({ doValues: { a: 1 }, doGen: 5, kvEntries: kv, kvStats: JSON.stringify(statsDoc(4, 7)) }) });
    expect(older.code).toBe(0);
    const newer = await cli([...target, "verify-kv"], { agent: await syncScenario({ doValues: { a: 1 }, doGen: 5, kvEntries: kv, kvStats: JSON.stringify(statsDoc(6, 1)) }) });
    expect(newer.code).toBe(1);
    expect(newer.stdout).toMatch(/do_cache_stats \(generation 6\) is newer than do_cache_entries \(generation 5\)/);
    const sameGenOtherSize = await cli([...target, "verify-kv"], { agent: await syncScenario({ doValues: { a: 1 }, doGen: 5, kvEntries: kv, kvStats: JSON.stringify(statsDoc(5, 3)) }) });
    expect(sameGenOtherSize.code).toBe(1);
    expect(sameGenOtherSize.stdout).toMatch(/do_cache_stats says size 3 but do_cache_entries holds 1 live entries/);
  });

  it("verify-kv fails (1) when the DO reports that KV cannot be written, whatever --max-lag-seconds tolerates", async () => {
    const kv = JSON.stringify(await snapshot(5, { a: 1 }));
    const stats = JSON.stringify(statsDoc(5, 1));
    const lastError = "daily KV write budget exhausted (1000/1000 writes today, resets at 00:00 UTC)";
    const agent = await syncScenario({ doValues: { a: 2 }, doGen: 6, kvEntries: kv, kvStats: stats, pendingSince: Date.now() - 2_000, kv: { writable: false, lastError } });
    const r = await cli([...target, "verify-kv", "--max-lag-seconds", "86400"], { agent });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`the DO reports that KV cannot be written: ${lastError}`);
  });

  it("--max-lag-seconds tolerates a recent unflushed write and flags an old one", async () => {
    const kv = JSON.stringify(await snapshot(5, { a: 1 }));
    const stats = JSON.stringify(statsDoc(5, 1));
    const recent = await syncScenario({ doValues: { a: 2 }, doGen: 6, kvEntries: kv, kvStats: stats, pendingSince: Date.now() - 2_000 });
    const ok1 = await cli([...target, "--json", "verify-kv", "--max-lag-seconds", "30"], { agent: recent });
    expect(ok1.code).toBe(0);
    expect(JSON.parse(ok1.stdout).kv.lag).toMatchObject({ generations: 1, tolerated: true });
    const old = await syncScenario({ doValues: { a: 2 }, doGen: 6, kvEntries: kv, kvStats: stats, pendingSince: Date.now() - 60_000 });
    const late = await cli([...target, "verify-kv", "--max-lag-seconds", "30"], { agent: old });
    expect(late.code).toBe(1);
    // The lag is measured when the CLI runs, so it may read 60.1s on a loaded machine: match the shape.
    expect(late.stdout).toMatch(/KV is behind the DO by 1 generation, 6\d(\.\d)?s \(more than --max-lag-seconds 30\)/);
  });

  it("a Cloudflare API failure is an error (2), not drift", async () => {
    const agent = mockAgent();
    const worker = agent.get("http://worker.test");
    const doSnap = await snapshot(1, {});
    worker.intercept({ path: "/api/v1/cache/snapshot", method: "GET" }).reply(200, ok(doSnap), json);
    worker.intercept({ path: "/api/v1/cache/metadata", method: "GET" }).reply(200, ok(metadataFor(doSnap)), json);
    agent.get("http://cf.test").intercept({ path: (p) => p.startsWith(`${KV_PATH}/values/`), method: "GET" }).reply(403, { success: false, errors: [{ code: 10000, message: "Authentication error" }], messages: [], result: null }).times(2);
    const r = await cli([...target, "verify-kv"], { agent });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/\[10000\] Authentication error/);
    expectNoSecrets(r);
  });
});

describe("seed", () => {
  it("reports a bad NDJSON line by number, seeds the rest, and exits 2", async () => {
    const dir = tempDir({ "in.ndjson": '{"key":"a","value":1}\n{"key":"b","value":2}\n{"key": oops\n\n{"key":"","value":3}\n{"key":"c","value":4,"ttlSeconds":60}\n' });
    const agent = mockAgent();
    let sent: any;
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/metadata", method: "GET" }).reply(200, ok(emptyMetadata()), json);
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/seed", method: "POST" }).reply(200, (opts) => {
      sent = JSON.parse(String(opts.body));
      return ok({ applied: sent.entries.length, generation: 9, evicted: 0 });
    }, json);
    const r = await cli([...target, "seed", "in.ndjson", "--ttl", "300"], { agent, cwd: dir });
    expect(sent.entries).toEqual([{ key: "a", value: 1, ttlSeconds: 300 }, { key: "b", value: 2, ttlSeconds: 300 }, { key: "c", value: 4, ttlSeconds: 60 }]);
    expect(r.stderr).toMatch(/rejected line 3: not valid JSON/);
    expect(r.stderr).toMatch(/rejected line 5 \(""\): key must not be empty/);
    expect(r.stdout).toMatch(/seeded 3 entries, 2 rejected/);
    expect(r.code).toBe(2);
  });

  it("accepts a JSON array and a do_cache_entries snapshot from stdin, in batches", async () => {
    const agent = mockAgent();
    const batches: number[] = [];
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/metadata", method: "GET" }).reply(200, ok(emptyMetadata()), json);
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/seed", method: "POST" }).reply(200, (opts) => {
      const body = JSON.parse(String(opts.body));
      batches.push(body.entries.length);
      return ok({ applied: body.entries.length, generation: batches.length, evicted: 0 });
    }, json).times(3);
    const snap = await snapshot(3, { a: 1, b: 2, c: 3, d: 4, e: 5 });
    const r = await cli([...target, "--json", "seed", "-", "--batch", "2"], { agent, stdin: JSON.stringify(snap) });
    expect(r.code).toBe(0);
    expect(batches).toEqual([2, 2, 1]);
    expect(JSON.parse(r.stdout)).toMatchObject({ written: 5, rejected: 0, format: "snapshot" });
  });

  it("rejects a value nested 5,000 levels deep by its line, and seeds the rest (exit 2), without crashing", async () => {
    const deep = `${"[".repeat(5000)}1${"]".repeat(5000)}`;
    const dir = tempDir({ "in.ndjson": `{"key":"a","value":1}\n{"key":"b","value":2}\n{"key":"deep","value":${deep}}\n{"key":"c","value":{"ok":[1,2]}}\n` });
    const agent = mockAgent();
    let sent: any;
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/metadata", method: "GET" }).reply(200, ok(emptyMetadata()), json);
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/seed", method: "POST" }).reply(200, (opts) => {
      sent = JSON.parse(String(opts.body));
      return ok({ applied: sent.entries.length, generation: 2, evicted: 0 });
    }, json);
    const r = await cli([...target, "seed", "in.ndjson"], { agent, cwd: dir });
    expect(r.stderr).not.toMatch(/unexpected failure/);
    expect(r.stderr).toMatch(/rejected line 3 \("deep"\): value is nested deeper than 100 levels/);
    expect(sent.entries.map((e: { key: string }) => e.key)).toEqual(["a", "b", "c"]);
    expect(r.stdout).toMatch(/seeded 3 entries, 1 rejected/);
    expect(r.code).toBe(2);
    // The same in a JSON array (by index), and in --json's reject list.
    const arr = tempDir({ "in.json": `[{"key":"x","value":${deep}},{"key":"y","value":1}]` });
    const dry = await cli([...target, "--json", "seed", "in.json", "--dry-run"], { agent: mockAgent(), cwd: arr });
    expect(dry.code).toBe(2);
    expect(JSON.parse(dry.stdout)).toMatchObject({ valid: 1, rejected: 1, rejects: [{ where: "entry 0", key: "x", reason: expect.stringMatching(/nested deeper than 100 levels/) }] });
  });

  it("--dry-run validates and sends nothing", async () => {
    const dir = tempDir({ "a.json": '[{"key":"a","value":1},{"key":"b"}]' });
    const r = await cli([...target, "seed", "a.json", "--dry-run"], { agent: mockAgent(), cwd: dir });
    expect(r.stdout).toMatch(/dry run: 1 valid entries in 1 batch\(es\), 1 rejected/);
    expect(r.stderr).toMatch(/entry 1 \("b"\): missing "value"/);
  });

  it("a truncated JSON array fails as a whole with exit 2", async () => {
    const dir = tempDir({ "bad.json": '[{"key":"a","value":1},' });
    const r = await cli([...target, "seed", "bad.json"], { agent: mockAgent(), cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/bad\.json: input is not valid JSON/);
  });

  it("Ctrl-C stops between batches, says how many were written, and exits 130", async () => {
    const agent = mockAgent();
    const ctrlC = new CtrlC();
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/metadata", method: "GET" }).reply(200, ok(emptyMetadata()), json);
    let requests = 0;
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/seed", method: "POST" }).reply(200, (opts) => {
      // Ctrl-C while the third batch is in flight: that batch completes, no fourth is sent.
      if (++requests === 3) ctrlC.press();
      return ok({ applied: JSON.parse(String(opts.body)).entries.length, generation: requests, evicted: 0 });
    }, json).times(10);
    const entries = Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: i }));
    const r = await cli([...target, "seed", "-", "--batch", "1"], { agent, stdin: JSON.stringify(entries), ctrlC });
    expect(r.code).toBe(130);
    expect(requests).toBe(3);
    const lines = r.stderr.trim().split("\n");
    // Said before the first request, once the Ctrl-C handler is in place (the e2e test waits for this line).
    expect(lines[0]).toBe("sending 10 entries in 10 batches of up to 1…");
    expect(lines).toContain("interrupt: stopping after the batch in flight…");
    expect(lines.at(-1)).toBe("error: interrupted: 3 of 10 entries written (each batch is atomic; the rest were not sent)");
  });
});

describe("clear", () => {
  it("refuses without --yes when stdin is not a terminal, and deletes nothing", async () => {
    const agent = mockAgent();
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, ok(liveStats(3)), json);
    const r = await cli([...target, "clear"], { agent });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refusing to clear without --yes/);
    // No DELETE interceptor exists: had the CLI sent one, MockAgent would have failed the run.
  });

  it("--yes clears the chosen scope", async () => {
    const agent = mockAgent();
    const w = agent.get("http://worker.test");
    w.intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, ok(liveStats(3)), json);
    w.intercept({ path: "/api/v1/cache?scope=kv", method: "DELETE" }).reply(200, ok({ scope: "kv", deletedEntries: 0, kvKeysDeleted: true, generation: 3 }), json);
    const r = await cli([...target, "clear", "--yes", "--scope", "kv"], { agent });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/cleared kv/);
  });

  it("asks on a terminal, and only 'yes' deletes", async () => {
    const agent = mockAgent();
    const w = agent.get("http://worker.test");
    w.intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, ok(liveStats(3)), json).times(2);
    w.intercept({ path: "/api/v1/cache?scope=all", method: "DELETE" }).reply(200, ok({ scope: "all", deletedEntries: 1, kvKeysDeleted: true, generation: 4 }), json);
    const no = await cli([...target, "clear"], { agent, stdin: "n\n", stdinTTY: true });
    expect(no.code).toBe(2);
    expect(no.stderr).toMatch(/Delete every entry in the DO and both KV snapshot keys \(1 entries, generation 3\) at http:\/\/worker\.test\? Type "yes"/);
    expect(no.stderr).toMatch(/aborted; nothing was deleted/);
    const yes = await cli([...target, "clear"], { agent, stdin: "yes\n", stdinTTY: true });
    expect(yes.code).toBe(0);
    expect(yes.stdout).toMatch(/cleared all: 1 entries deleted, KV keys deleted/);
  });

  it("rejects an unknown scope before touching anything", async () => {
    expect((await cli([...target, "clear", "--yes", "--scope", "everything"], { agent: mockAgent() })).code).toBe(2);
  });
});

describe("doctor", () => {
  const health = (agent: ReturnType<typeof mockAgent>, version = "0.1.0") =>
    agent.get("http://worker.test").intercept({ path: "/health", method: "GET" }).reply(200, ok({ status: "ok", version }), { headers: { "content-type": "application/json", date: new Date().toUTCString() } });

  it("fails (exit 2) when the key is refused, and says what to fix", async () => {
    const agent = mockAgent();
    health(agent);
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(401, { success: false, error: { code: "unauthorized", message: "API key refused" } }, json);
    agent.get("http://cf.test").intercept({ path: `${KV_PATH}/metadata/${ENTRIES_KEY}`, method: "GET" }).reply(200, { success: true, errors: [], messages: [], result: { generation: 3 } });
    const r = await cli([...target, "--json", "doctor"], { agent });
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout);
    const auth = doc.checks.find((c: { name: string }) => c.name === "auth");
    expect(auth).toMatchObject({ verdict: "fail", fix: expect.stringMatching(/TFTCACHE_API_KEY/) });
    expect(doc.checks.find((c: { name: string }) => c.name === "reachability").verdict).toBe("ok");
    expect(doc.checks.find((c: { name: string }) => c.name === "clock skew").verdict).toBe("ok");
    expectNoSecrets(r);
  });

  it("keeps a Worker's path prefix for /health as for the admin API", async () => {
    const agent = mockAgent();
    const w = agent.get("http://worker.test");
    w.intercept({ path: "/cache/health", method: "GET" }).reply(200, ok({ status: "ok", version: "0.1.0" }), json);
    w.intercept({ path: "/cache/api/v1/cache/stats", method: "GET" }).reply(200, ok(liveStats(2)), json);
    const r = await cli(["--url", "http://worker.test/cache/", "--api-key", ADMIN_KEY, "--json", "doctor"], { agent });
    expect(r.code).toBe(0);
    const checks = JSON.parse(r.stdout).checks as Array<{ name: string; verdict: string }>;
    expect(checks.find((c) => c.name === "reachability")?.verdict).toBe("ok");
    expect(checks.find((c) => c.name === "auth")?.verdict).toBe("ok");
  });

  it("warns (exit 0) about an API key shorter than 16 characters, and says how to make a strong one", async () => {
    const weak = "k7-short-key"; // 12 characters
    const agent = mockAgent();
    health(agent);
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, ok(liveStats(2)), json).times(2);
    const r = await cli(["--url", "http://worker.test", "--api-key", weak, "--json", "doctor"], { agent });
    expect(r.code).toBe(0);
    const admin = JSON.parse(r.stdout).checks.find((c: { name: string }) => c.name === "admin key");
    expect(admin).toMatchObject({ verdict: "warn", detail: expect.stringMatching(/only 12 characters: weak, it can be brute-forced/) });
    expect(admin.fix).toMatch(/openssl rand -hex 32/);
    expect(admin.fix).toMatch(/wrangler secret put ADMIN_API_KEY/);
    expect(r.stdout + r.stderr).not.toContain(weak);
    const strong = await cli(["--url", "http://worker.test", "--api-key", ADMIN_KEY, "--json", "doctor"], { agent: ((a) => (health(a), a.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, ok(liveStats(2)), json), a))(mockAgent()) });
    expect(JSON.parse(strong.stdout).checks.find((c: { name: string }) => c.name === "admin key").verdict).toBe("ok");
  });

  it("--json output is redacted: a server that echoes the key or the token does not get them printed", async () => {
    const agent = mockAgent();
    health(agent);
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(500, { success: false, error: { code: "internal_error", message: `bad key ${ADMIN_KEY} with token ${CF_TOKEN}` } }, json).times(4);
    agent.get("http://cf.test").intercept({ path: `${KV_PATH}/metadata/${ENTRIES_KEY}`, method: "GET" }).reply(403, { success: false, errors: [{ code: 10000, message: `token ${CF_TOKEN} refused` }], messages: [], result: null });
    const r = await cli([...target, "--json", "doctor"], { agent });
    expect(r.code).toBe(2);
    const doc = JSON.parse(r.stdout);
    expect(doc.checks.find((c: { name: string }) => c.name === "auth").detail).toMatch(/bad key \*\*\* with token \*\*\*/);
    expect(doc.checks.find((c: { name: string }) => c.name === "namespace").detail).toMatch(/token \*\*\* refused/);
    expectNoSecrets(r);
  });

  it("only warns (exit 0) when the Cloudflare settings are missing or the Worker is another version", async () => {
    const agent = mockAgent();
    health(agent, "9.9.9");
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, ok(liveStats(2)), json);
    const r = await cli(["--url", "http://worker.test", "--api-key", ADMIN_KEY, "--json", "doctor"], { agent });
    expect(r.code).toBe(0);
    const checks = JSON.parse(r.stdout).checks as Array<{ name: string; verdict: string; detail: string }>;
    expect(checks.find((c) => c.name === "cloudflare api")).toMatchObject({ verdict: "warn", detail: expect.stringMatching(/missing accountId, apiToken, namespaceId/) });
    expect(checks.find((c) => c.name === "reachability")).toMatchObject({ verdict: "warn", detail: expect.stringMatching(/CLI is 0\.1\.0/) });
  });
});

describe("config precedence: flag > env > config file > wrangler.toml", () => {
  const toml = `[[kv_namespaces]]\nbinding = "CACHE_DO_KV"\nid = "from-toml-id"\npreview_id = "from-toml-preview"\n\n[env.staging]\n[[env.staging.kv_namespaces]]\nbinding = "CACHE_DO_KV"\nid = "staging-id"\n`;

  async function resolvedNamespace(args: string[], env: NodeJS.ProcessEnv, files: Record<string, string>) {
    const agent = mockAgent();
    let seenPath = "";
    agent.get("http://cf.test").intercept({ path: (p) => { seenPath = p; return true; }, method: "GET" }).reply(200, JSON.stringify(await snapshot(1, { k: 1 })));
    await cli(["--url", "http://worker.test", "--api-key", ADMIN_KEY, "--account-id", "acct", "--api-token", CF_TOKEN, "--cf-api-base", "http://cf.test/client/v4", ...args, "get", "k", "--from", "kv"], { agent, env, cwd: tempDir(files) });
    return seenPath.split("/namespaces/")[1]!.split("/")[0];
  }

  it("reads the namespace from wrangler.toml, --preview and --env", async () => {
    expect(await resolvedNamespace([], {}, { "wrangler.toml": toml })).toBe("from-toml-id");
    expect(await resolvedNamespace(["--preview"], {}, { "wrangler.toml": toml })).toBe("from-toml-preview");
    expect(await resolvedNamespace(["--env", "staging"], {}, { "wrangler.toml": toml })).toBe("staging-id");
  });

  it("lets the config file beat wrangler.toml, env beat the file, and the flag beat env", async () => {
    const files = { "wrangler.toml": toml, "tftcache.config.json": JSON.stringify({ namespaceId: "from-file" }) };
    expect(await resolvedNamespace([], {}, files)).toBe("from-file");
    expect(await resolvedNamespace([], { TFTCACHE_KV_NAMESPACE_ID: "from-env" }, files)).toBe("from-env");
    expect(await resolvedNamespace(["--namespace-id", "from-flag"], { TFTCACHE_KV_NAMESPACE_ID: "from-env" }, files)).toBe("from-flag");
  });

  it("reports a broken config file clearly", async () => {
    const r = await cli(["-c", "broken.json", "stats"], { cwd: tempDir({ "broken.json": "{nope" }) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/broken\.json is not valid JSON/);
  });
});
