import { describe, expect, it } from "vitest";
import { ENTRIES_KEY, STATS_KEY } from "../../protocol/index.js";
import { Output } from "../../cli/output.js";
import { displayKey, quoted, safeJson, safeText } from "../../cli/terminal-safe.js";
import { KV_PATH, cli, json, mockAgent, ok, target, tempDir } from "./harness.js";
import { liveStats, metadataFor, snapshot, statsDoc } from "./fixtures.js";

/**
 * Keys are written by anyone with the service binding; printed raw they would retitle the operator's terminal
 * (OSC), clear it (CSI 2J), overwrite a line (CR), or reorder what is shown (U+202E).
 */
const NASTY = {
  osc: "\u001b]0;pwned\u0007",
  clear: "\u001b[2J",
  cr: "ok\rFAKE",
  nul: "nul\u0000",
  c1: "csi\u009b31m",
  bidi: "invoice\u202eexe.pdf",
  del: "del\u007f",
};

/** Any character that changes what a terminal shows or how: what must never reach it raw. */
const RAW_UNSAFE = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/;

describe("terminal-safe output: keys and values are escaped for humans, exact in --json", () => {
  it("escapes visibly and unambiguously", () => {
    expect(displayKey("quote:AAPL")).toBe("quote:AAPL");
    expect(displayKey(NASTY.osc)).toBe('"\\x1b]0;pwned\\x07"');
    expect(displayKey(NASTY.clear)).toBe('"\\x1b[2J"');
    expect(displayKey(NASTY.cr)).toBe('"ok\\rFAKE"');
    expect(displayKey(NASTY.nul)).toBe('"nul\\x00"');
    expect(displayKey(NASTY.c1)).toBe('"csi\\x9b31m"');
    expect(displayKey(NASTY.bidi)).toBe('"invoice\\u202eexe.pdf"');
    expect(displayKey("\u{e0001}tag")).toBe('"\\u{e0001}tag"');
    expect(displayKey("lone\ud800")).toBe('"lone\\ud800"');
    // A key that merely looks escaped is quoted too, with its backslash doubled: the two never print alike.
    expect(displayKey("\\x1b")).toBe('"\\\\x1b"');
    expect(displayKey("\u001b")).toBe('"\\x1b"');
    expect(displayKey('say "hi"')).toBe('"say \\"hi\\""');
    expect(quoted("")).toBe('""');
    expect(safeText("plain é ü 日本")).toBe("plain é ü 日本");
    // safeJson is still JSON, for the same value.
    const value = { k: `${NASTY.osc}${NASTY.c1}${NASTY.bidi}\u2028` };
    expect(safeJson(value, 2)).not.toMatch(RAW_UNSAFE);
    expect(JSON.parse(safeJson(value, 2))).toEqual(value);
  });

  it("Output escapes whatever a command forgot, but keeps its own colours", () => {
    for (const color of [false, true]) {
      let stdout = "";
      let stderr = "";
      const out = new Output(
        { stdout: { write: (t: string) => (stdout += t), isTTY: true }, stderr: { write: (t: string) => (stderr += t) }, stdin: process.stdin, env: {}, cwd: "/", onInterrupt: () => () => {} },
        { json: false, color },
        (t) => t,
      );
      out.print(`${out.chalk.green("ok")} ${NASTY.osc}\nline 2 ${NASTY.bidi}`);
      out.note(`note ${NASTY.clear}`);
      out.jsonLine({ k: NASTY.c1 });
      expect(stdout.replace(/\x1b\[3?\d+m/g, "")).not.toMatch(RAW_UNSAFE);
      expect(stdout).toContain("\\x1b]0;pwned\\x07\nline 2 invoice\\u202eexe.pdf\n");
      expect(stdout.includes("\x1b[32mok\x1b[39m")).toBe(color);
      expect(stderr).toBe("note \\x1b[2J\n");
      expect(JSON.parse(stdout.trim().split("\n").at(-1)!)).toEqual({ k: NASTY.c1 });
    }
  });

  it("list prints every nasty key escaped; --json keeps them exact", async () => {
    const keys = Object.values(NASTY).map((key) => ({ key, expiresAt: Date.now() + 60_000, size: 10 }));
    const agent = mockAgent();
    agent.get("http://worker.test").intercept({ path: (p) => p.startsWith("/api/v1/cache/entries"), method: "GET" }).reply(200, ok({ keys, cursor: null }), json).times(2);
    const human = await cli([...target, "list"], { agent });
    expect(human.code).toBe(0);
    expect(human.stdout).not.toMatch(RAW_UNSAFE);
    for (const key of Object.values(NASTY)) expect(human.stdout).toContain(displayKey(key));
    const machine = await cli([...target, "--json", "list"], { agent });
    expect(JSON.parse(machine.stdout).keys.map((k: { key: string }) => k.key)).toEqual(Object.values(NASTY));
    expect(machine.stdout).not.toMatch(RAW_UNSAFE); // still exact after parsing: written as \u escapes
  });

  it("diff and verify-kv name a nasty key escaped", async () => {
    const doValues = { [NASTY.osc]: 1, [NASTY.bidi]: 2 };
    const setup = async () => {
      const agent = mockAgent();
      const w = agent.get("http://worker.test");
      const doSnap = await snapshot(5, doValues);
      w.intercept({ path: "/api/v1/cache/snapshot", method: "GET" }).reply(200, ok(doSnap), json);
      w.intercept({ path: "/api/v1/cache/metadata", method: "GET" }).reply(200, ok(metadataFor(doSnap)), json);
      const cf = agent.get("http://cf.test");
      cf.intercept({ path: `${KV_PATH}/values/${ENTRIES_KEY}`, method: "GET" }).reply(200, JSON.stringify(await snapshot(5, { [NASTY.clear]: 3 })));
      cf.intercept({ path: `${KV_PATH}/values/${STATS_KEY}`, method: "GET" }).reply(200, JSON.stringify(statsDoc(5, 1)));
      return agent;
    };
    const diff = await cli([...target, "diff"], { agent: await setup() });
    expect(diff.code).toBe(1);
    expect(`${diff.stdout}${diff.stderr}`).not.toMatch(RAW_UNSAFE);
    expect(diff.stdout).toContain(`+ ${displayKey(NASTY.osc)}`);
    expect(diff.stdout).toContain(`- ${displayKey(NASTY.clear)}`);
    const verify = await cli([...target, "verify-kv"], { agent: await setup() });
    expect(verify.code).toBe(1);
    expect(`${verify.stdout}${verify.stderr}`).not.toMatch(RAW_UNSAFE);
    expect(verify.stdout).toContain(`+ ${displayKey(NASTY.bidi)}`);
    const machine = await cli([...target, "--json", "diff"], { agent: await setup() });
    expect(JSON.parse(machine.stdout).items.map((i: { key: string }) => i.key).sort()).toEqual([NASTY.clear, NASTY.osc, NASTY.bidi].sort());
  });

  it("get prints a value with control characters as valid, escaped JSON, and a missing nasty key escaped", async () => {
    const value = { title: NASTY.osc, note: `${NASTY.c1} ${NASTY.bidi}`, list: [NASTY.cr] };
    const agent = mockAgent();
    const w = agent.get("http://worker.test");
    w.intercept({ path: "/api/v1/cache/entries/v", method: "GET" }).reply(200, ok({ key: "v", value, expiresAt: Date.now() + 1000, cachedAt: 1, lastAccessed: 1 }), json);
    w.intercept({ path: `/api/v1/cache/entries/${encodeURIComponent(NASTY.osc)}`, method: "GET" }).reply(404, { success: false, error: { code: "not_found", message: "no entry" } }, json);
    const found = await cli([...target, "get", "v"], { agent });
    expect(found.code).toBe(0);
    expect(found.stdout).not.toMatch(RAW_UNSAFE);
    expect(JSON.parse(found.stdout)).toEqual(value);
    const missing = await cli([...target, "get", NASTY.osc], { agent });
    expect(missing.code).toBe(1);
    expect(missing.stderr).not.toMatch(RAW_UNSAFE);
    expect(missing.stderr).toContain('"\\x1b]0;pwned\\x07" not found');
  });

  it("seed's reject lines and a server's error message are escaped", async () => {
    const dir = tempDir({ "in.ndjson": `${JSON.stringify({ key: NASTY.clear })}\n${JSON.stringify({ key: NASTY.bidi, value: 1, ttlSeconds: -1 })}\n{"key":"\u001b[31mred", oops\n` });
    const r = await cli([...target, "seed", "in.ndjson", "--dry-run"], { agent: mockAgent(), cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).not.toMatch(RAW_UNSAFE);
    expect(r.stderr).toContain('rejected line 1 ("\\x1b[2J"): missing "value"');
    expect(r.stderr).toContain('rejected line 2 ("invoice\\u202eexe.pdf"): ttlSeconds must be greater than 0');
    expect(r.stderr).toMatch(/rejected line 3: not valid JSON/);

    const agent = mockAgent();
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(400, { success: false, error: { code: "bad_request", message: `key ${NASTY.osc}${NASTY.clear} is bad` } }, json);
    const err = await cli([...target, "stats"], { agent });
    expect(err.code).toBe(2);
    expect(err.stderr).not.toMatch(RAW_UNSAFE);
    expect(err.stderr).toContain("key \\x1b]0;pwned\\x07\\x1b[2J is bad");
  });

  it("stats shows a server's lastError escaped, and doctor a server's version string", async () => {
    const agent = mockAgent();
    const w = agent.get("http://worker.test");
    const stats = liveStats(2);
    stats.kv.lastError = `KV said ${NASTY.clear}`;
    w.intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, ok(stats), json).times(2);
    w.intercept({ path: "/health", method: "GET" }).reply(200, ok({ status: "ok", version: `0.1.0${NASTY.osc}` }), json);
    const s = await cli([...target, "stats"], { agent });
    expect(s.stdout).not.toMatch(RAW_UNSAFE);
    expect(s.stdout).toContain("KV said \\x1b[2J");
    const d = await cli(["--url", "http://worker.test", "--api-key", "adm-SECRET-key-9f8e7d", "doctor"], { agent });
    expect(d.stdout).not.toMatch(RAW_UNSAFE);
    expect(d.stdout).toContain("0.1.0\\x1b]0;pwned\\x07");
  });
});
