import { describe, expect, it } from "vitest";
import { ENTRIES_KEY } from "../../protocol/index.js";
import { ADMIN_KEY, KV_PATH, cli, json, mockAgent, ok, target, tempDir } from "./harness.js";
import { liveStats, snapshot } from "./fixtures.js";

describe("settings are checked as strictly in a config file as on the command line", () => {
  it("a --url or TFTCACHE_URL that is not an http(s) URL is a usage error naming it (exit 2), not 'unexpected failure'", async () => {
    const notUrl = await cli(["--url", "notaurl", "--api-key", ADMIN_KEY, "stats"]);
    expect(notUrl.code).toBe(2);
    expect(notUrl.stderr).toMatch(/--url is not a URL: "notaurl"/);
    expect(notUrl.stderr).not.toMatch(/unexpected failure/);
    const ftp = await cli(["--api-key", ADMIN_KEY, "stats"], { env: { TFTCACHE_URL: "ftp://x" } });
    expect(ftp.code).toBe(2);
    expect(ftp.stderr).toMatch(/TFTCACHE_URL is not an http\(s\) URL \(ftp: given\)/);
    expect(ftp.stderr).not.toMatch(/header/);
  });

  it.each([
    ['{"timeout":"abc"}', /"timeout" in config file .* must be a number \(got "abc"\)/],
    ['{"apiKey":123}', /"apiKey" in config file .* must be a string \(got 123\)/],
    ['{"preview":"yes"}', /"preview" in config file .* must be a boolean/],
  ])("config %s is refused with a clear error", async (text, message) => {
    const dir = tempDir({ "tftcache.config.json": text });
    const r = await cli(["--url", "http://worker.test", "stats"], { cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
  });
});

describe("get --from kv never serves a torn snapshot", () => {
  it("exits 1 and says the snapshot is torn, with what to do", async () => {
    const torn = await snapshot(3, { "quote:AAPL": { ts: "real" } });
    torn.entries[0]![1].value = { ts: "EVIL" }; // the digest no longer holds
    const agent = mockAgent();
    agent.get("http://cf.test").intercept({ path: `${KV_PATH}/values/${ENTRIES_KEY}`, method: "GET" }).reply(200, JSON.stringify(torn));
    const r = await cli([...target, "--json", "get", "quote:AAPL", "--from", "kv"], { agent });
    expect(r.code).toBe(1);
    expect(r.stdout).not.toContain("EVIL");
    expect(r.stderr).toMatch(/do_cache_entries in KV is torn \(digest mismatch.*\): not served/);
    expect(r.stderr).toMatch(/tftcache flush/);
  });
});

describe("verify-kv --flush when KV already holds the generation", () => {
  it("says nothing was written instead of 'flushed'", async () => {
    const snap = await snapshot(5, { a: 1 });
    const agent = mockAgent();
    const w = agent.get("http://worker.test");
    w.intercept({ path: "/api/v1/cache/flush", method: "POST" }).reply(200, ok({ generation: 5, digest: snap.digest, writtenAt: 1, entries: 1, written: true, upToDate: true }), json);
    w.intercept({ path: "/api/v1/cache/metadata", method: "GET" }).reply(200, ok({ generation: 5, digest: snap.digest, size: 1, kv: liveStats(5).kv }), json);
    const cf = agent.get("http://cf.test");
    cf.intercept({ path: `${KV_PATH}/values/${ENTRIES_KEY}`, method: "GET" }).reply(200, JSON.stringify(snap));
    cf.intercept({ path: `${KV_PATH}/values/do_cache_stats`, method: "GET" }).reply(200, JSON.stringify({ format: 1, generation: 5, writtenAt: 1, size: 1, bytes: 10, hits: 0, misses: 0, evictions: 0, expirations: 0, hitRate: 0, oldestEntry: null, newestEntry: null, kvWritesToday: 2 }));
    const r = await cli([...target, "verify-kv", "--flush"], { agent });
    expect(r.stderr).toMatch(/KV already held generation 5: nothing written/);
    expect(r.stderr).not.toMatch(/flushed generation/);
    expect(r.code).toBe(0);
  });
});

describe("Ctrl-C at a confirmation prompt", () => {
  it("is an interruption (exit 130) that did nothing, not an 'unexpected failure'", async () => {
    const agent = mockAgent();
    agent.get("http://worker.test").intercept({ path: (p) => p.startsWith("/api/v1/cache/entries?"), method: "GET" }).reply(200, ok({ keys: [{ key: "q:1", expiresAt: Date.now() + 1e6, size: 100 }], cursor: null }), json);
    const r = await cli([...target, "purge", "--prefix", "q"], { agent, stdinTTY: true, interruptWhen: ({ stderr }) => stderr.includes('Type "yes" to confirm') });
    expect(r.code).toBe(130);
    expect(r.stderr).toMatch(/interrupted at the prompt: nothing was done \(purge\)/);
    expect(r.stderr).not.toMatch(/unexpected failure/);
  });
});
