import { spawnSync } from "node:child_process";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ENTRIES_KEY } from "../../protocol/index.js";
import { buildProgram } from "../../cli/program.js";
import { ADMIN_KEY, KV_PATH, cli, json, mockAgent, ok, target } from "./harness.js";
import { liveStats } from "./fixtures.js";

const W = "http://worker.test";

describe("set and del", () => {
  it("set KEY JSON --ttl writes one entry with PUT /entries/:key", async () => {
    const agent = mockAgent();
    let body: unknown;
    agent.get(W).intercept({ path: "/api/v1/cache/entries/quote%3AAAPL", method: "PUT", headers: { "x-api-key": ADMIN_KEY } }).reply(200, (opts) => {
      body = JSON.parse(String(opts.body));
      return ok({ key: "quote:AAPL", generation: 12, expiresAt: Date.now() + 300_000, evicted: 0 });
    }, json);
    const r = await cli([...target, "set", "quote:AAPL", '{"bid":189.5}', "--ttl", "300"], { agent });
    expect(r.code).toBe(0);
    expect(body).toEqual({ value: { bid: 189.5 }, ttlSeconds: 300 });
    expect(r.stdout).toMatch(/^set "quote:AAPL", expires in 5m \(generation 12\)$/m);
  });

  it("set refuses what the Worker would refuse, before sending: bad JSON, a bad key, a bad TTL (exit 2)", async () => {
    const agent = mockAgent();
    for (const [argv, message] of [
      [["set", "k", "{bid:1}"], /the value is not valid JSON/],
      [["set", "", "1"], /key must not be empty/],
      [["set", "k", "1", "--ttl", "0"], /--ttl must be a number of seconds from 0\.001/],
      [["set", "k", JSON.stringify("x".repeat(1024 * 1024 + 1))], /value is larger than 1048576 bytes/],
    ] as const) {
      const r = await cli([...target, ...argv], { agent });
      expect(r.code).toBe(2);
      expect(r.stderr).toMatch(message);
    }
  });

  it("set warns when the bounds evicted entries to make room", async () => {
    const agent = mockAgent();
    agent.get(W).intercept({ path: "/api/v1/cache/entries/k", method: "PUT" }).reply(200, ok({ key: "k", generation: 2, expiresAt: Date.now() + 1000, evicted: 2 }), json);
    const r = await cli([...target, "set", "k", "1"], { agent });
    expect(r.code).toBe(0);
    expect(r.stderr).toMatch(/the cache's bounds evicted 2 least recently used entries/);
  });

  it("del KEY deletes one entry; an absent key exits 1", async () => {
    const agent = mockAgent();
    const w = agent.get(W);
    w.intercept({ path: "/api/v1/cache/entries/a%2Fb", method: "DELETE" }).reply(200, ok({ key: "a/b", generation: 4 }), json);
    w.intercept({ path: "/api/v1/cache/entries/nope", method: "DELETE" }).reply(404, { success: false, error: { code: "not_found", message: "no entry" } }, json);
    const r = await cli([...target, "del", "a/b"], { agent });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/deleted "a\/b" \(generation 4; KV follows with the next flush\)/);
    const missing = await cli([...target, "--json", "del", "nope"], { agent });
    expect(missing.code).toBe(1);
    expect(JSON.parse(missing.stdout)).toEqual({ key: "nope", deleted: false });
  });
});

describe("purge --prefix", () => {
  const keys = (n: number) => Array.from({ length: n }, (_, i) => ({ key: `session:${String(i).padStart(2, "0")}`, expiresAt: Date.now() + 60_000, size: 100 }));
  const listing = (agent: ReturnType<typeof mockAgent>, n: number) =>
    agent.get(W).intercept({ path: (p) => p.startsWith("/api/v1/cache/entries?") && p.includes("prefix=session%3A"), method: "GET" }).reply(200, ok({ keys: keys(n), cursor: null }), json).persist();

  it("--dry-run lists the first 20 matching keys and counts them, deleting nothing", async () => {
    const agent = mockAgent();
    listing(agent, 25);
    const r = await cli([...target, "purge", "--prefix", "session:", "--dry-run"], { agent });
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(21);
    expect(lines[20]).toBe("… and 5 more (use --json)");
    expect(r.stderr).toMatch(/dry run: would delete 25 entries with keys starting "session:" at http:\/\/worker\.test/);
  });

  it("refuses without --yes when stdin is not a terminal, as clear does; --yes deletes by prefix", async () => {
    const agent = mockAgent();
    listing(agent, 3);
    const refused = await cli([...target, "purge", "--prefix", "session:"], { agent });
    expect(refused.code).toBe(2);
    expect(refused.stderr).toMatch(/refusing to purge without --yes when stdin is not a terminal/);
    expect(refused.stderr).toMatch(/this would delete 3 entries with keys starting "session:"/);
    agent.get(W).intercept({ path: "/api/v1/cache/entries?prefix=session%3A", method: "DELETE" }).reply(200, ok({ prefix: "session:", deleted: 3, generation: 20 }), json);
    const r = await cli([...target, "purge", "--prefix", "session:", "--yes"], { agent });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/purged 3 entries with keys starting "session:" \(generation 20; KV follows with the next flush\)/);
  });

  it("no live key matches: says so, and still sends the hard purge (no prompt) so expired rows stale-if-error keeps go too", async () => {
    const agent = mockAgent();
    listing(agent, 0);
    let purges = 0;
    agent.get(W).intercept({ path: "/api/v1/cache/entries?prefix=session%3A", method: "DELETE" }).reply(200, () => (purges++, ok({ prefix: "session:", deleted: 0, generation: 21 })), json);
    const r = await cli([...target, "purge", "--prefix", "session:"], { agent });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/nothing to purge: no keys start with "session:"/);
    expect(purges).toBe(1);
    // --soft has nothing to mark: no request.
    const soft = await cli([...target, "purge", "--prefix", "session:", "--soft"], { agent });
    expect(soft.code).toBe(0);
    expect(purges).toBe(1);
  });

  it("asks on a terminal, and 'no' deletes nothing (exit 2)", async () => {
    const agent = mockAgent();
    listing(agent, 3);
    const r = await cli([...target, "purge", "--prefix", "session:"], { agent, stdin: "no\n", stdinTTY: true });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Delete 3 entries with keys starting "session:" at http:\/\/worker\.test\? Type "yes" to confirm/);
    expect(r.stderr).toMatch(/aborted; nothing was deleted/);
  });

  it("--soft sends mode=soft and reports the entries marked stale, not deleted (issue 15)", async () => {
    const agent = mockAgent();
    listing(agent, 3);
    const dry = await cli([...target, "purge", "--prefix", "session:", "--soft", "--dry-run"], { agent });
    expect(dry.stderr).toMatch(/dry run: would mark stale 3 entries with keys starting "session:"/);
    // Only a DELETE that carries mode=soft is answered: a hard purge would find no interceptor and fail.
    agent.get(W).intercept({ path: "/api/v1/cache/entries?prefix=session%3A&mode=soft", method: "DELETE" }).reply(200, ok({ prefix: "session:", deleted: 0, mode: "soft", marked: 3, generation: 21 }), json);
    const r = await cli([...target, "purge", "--prefix", "session:", "--soft", "--yes"], { agent });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/marked stale 3 entries with keys starting "session:" \(generation 21; getOrSet refreshes each on its next read; KV follows with the next flush\)/);
    agent.get(W).intercept({ path: "/api/v1/cache/entries?prefix=session%3A&mode=soft", method: "DELETE" }).reply(200, ok({ prefix: "session:", deleted: 0, mode: "soft", marked: 3, generation: 22 }), json);
    const asJson = await cli([...target, "--json", "purge", "--prefix", "session:", "--soft", "--yes"], { agent });
    expect(JSON.parse(asJson.stdout)).toEqual({ prefix: "session:", deleted: 0, mode: "soft", marked: 3, generation: 22 });
  });

  it("--soft against a Worker that predates it (which deletes instead) says so, exit 2", async () => {
    const agent = mockAgent();
    listing(agent, 2);
    agent.get(W).intercept({ path: "/api/v1/cache/entries?prefix=session%3A&mode=soft", method: "DELETE" }).reply(200, ok({ prefix: "session:", deleted: 2, generation: 23 }), json);
    const r = await cli([...target, "purge", "--prefix", "session:", "--soft", "--yes"], { agent });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/does not support --soft .* deleted 2 entries instead/);
  });

  it("an empty prefix is refused (that is clear), and --prefix is required", async () => {
    const empty = await cli([...target, "purge", "--prefix", ""], { agent: mockAgent() });
    expect(empty.code).toBe(2);
    expect(empty.stderr).toMatch(/--prefix must not be empty/);
    const none = await cli([...target, "purge", "--yes"], { agent: mockAgent() });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/required option '-p, --prefix <prefix>' not specified/);
  });
});

describe("doctor: a KV key without metadata is not a missing key", () => {
  it("says present-without-metadata, not 'not present'", async () => {
    const agent = mockAgent();
    const w = agent.get(W);
    w.intercept({ path: "/health", method: "GET" }).reply(200, ok({ status: "ok", version: "0.1.0" }), json);
    w.intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, ok(liveStats(2)), json);
    agent.get("http://cf.test").intercept({ path: `${KV_PATH}/metadata/${ENTRIES_KEY}`, method: "GET" }).reply(200, { success: true, errors: [], messages: [], result: null });
    const r = await cli([...target, "--json", "doctor"], { agent });
    const ns = JSON.parse(r.stdout).checks.find((c: { name: string }) => c.name === "namespace");
    expect(ns).toMatchObject({ verdict: "warn", detail: expect.stringMatching(/do_cache_entries present but has no metadata/) });
  });
});

describe("completion", () => {
  const io = { stdout: { write: () => true }, stderr: { write: () => true }, stdin: process.stdin, env: {}, cwd: "/", onInterrupt: () => () => {} };
  const program = buildProgram(io, {}, { exitCode: 0 });

  it("bash: a script bash accepts (bash -n) that completes commands, options and choices from the program's tree", async () => {
    const r = await cli(["completion", "bash"]);
    expect(r.code).toBe(0);
    const dir = mkdtempSync(join(tmpdir(), "tftcache-completion-"));
    const file = join(dir, "tftcache.bash");
    writeFileSync(file, r.stdout);
    expect(spawnSync("bash", ["-n", file], { encoding: "utf8" }).status).toBe(0);
    writeFileSync(join(dir, "backup-2026.json"), "{}");
    const complete = (...words: string[]) => {
      const script = `source ${JSON.stringify(file)}\nCOMP_WORDS=(${words.map((w) => JSON.stringify(w)).join(" ")})\nCOMP_CWORD=${words.length - 1}\n_tftcache_complete\nprintf '%s\\n' "\${COMPREPLY[@]}"`;
      const out = spawnSync("bash", ["-c", script], { encoding: "utf8", cwd: dir });
      expect(out.status).toBe(0);
      return out.stdout.split("\n").filter(Boolean);
    };
    expect(complete("tftcache", "")).toEqual(program.commands.map((c) => c.name()));
    expect(complete("tftcache", "re")).toEqual(["restore"]);
    expect(complete("tftcache", "get", "k", "--from", "")).toEqual(["do", "kv"]);
    expect(complete("tftcache", "--url", "http://x", "clear", "--scope", "a")).toEqual(["all"]);
    expect(complete("tftcache", "seed", "--al")).toEqual(["--allow-eviction"]);
    expect(complete("tftcache", "restore", "back")).toEqual(["backup-2026.json"]);
    expect(complete("tftcache", "completion", "")).toEqual(["bash", "zsh", "fish"]);
  });

  it("zsh and fish: every command and every option of the tree is in the script", async () => {
    for (const shell of ["zsh", "fish"]) {
      const r = await cli(["completion", shell]);
      expect(r.code).toBe(0);
      for (const c of program.commands) {
        expect(r.stdout).toContain(c.name());
        for (const o of c.options) if (o.long) expect(r.stdout).toContain(shell === "fish" ? `-l ${o.long.slice(2)}` : o.long);
      }
    }
    const zsh = (await cli(["completion", "zsh"])).stdout;
    expect(zsh.startsWith("#compdef tftcache\n")).toBe(true);
    expect(zsh).toContain("'--from[do or kv]:value:(do kv)'");
    expect((await cli(["completion", "fish"])).stdout).toContain("complete -c tftcache -n '__fish_seen_subcommand_from get' -l from -x -a 'do kv'");
  });

  it("an unknown shell is a usage error", async () => {
    const r = await cli(["completion", "powershell"]);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/Allowed choices are bash, zsh, fish/);
  });
});
