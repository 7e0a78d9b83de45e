import { existsSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ENTRIES_KEY, STATS_KEY, digestEntries, type EntriesSnapshot } from "../../protocol/index.js";
import { KV_PATH, CtrlC, cli, json, mockAgent, ok, target, tempDir } from "./harness.js";
import { liveStats, metadataFor, snapshot, statsDoc } from "./fixtures.js";

const W = "http://worker.test";
const values = (n: number, pad = 0) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${String(i).padStart(5, "0")}`, { i, pad: "x".repeat(pad) }]));

describe("export", () => {
  it("writes the DO's snapshot, checked against its digest, to a file (restorable format), and says what it wrote", async () => {
    const snap = await snapshot(7, values(3));
    const agent = mockAgent();
    agent.get(W).intercept({ path: "/api/v1/cache/snapshot", method: "GET" }).reply(200, ok(snap), json);
    const dir = tempDir();
    const r = await cli([...target, "export", "backup.json"], { agent, cwd: dir });
    expect(r.code).toBe(0);
    const written = JSON.parse(readFileSync(join(dir, "backup.json"), "utf8")) as EntriesSnapshot;
    expect(written).toEqual(snap);
    expect(await digestEntries(written.entries)).toBe(snap.digest);
    expect(r.stdout).toMatch(new RegExp(`^exported 3 entries \\(generation 7, ${snap.digest}\\) from the DO to backup\\.json`, "m"));
    expect(readdirSync(dir)).toEqual(["backup.json"]); // no temporary file left behind
  });

  it("shows download progress on a terminal, and none in a pipe", async () => {
    const snap = await snapshot(7, values(200, 100));
    const run = async (stderrTTY: boolean) => {
      const agent = mockAgent();
      agent.get(W).intercept({ path: "/api/v1/cache/snapshot", method: "GET" }).reply(200, ok(snap), { headers: { "content-type": "application/json" } });
      return cli([...target, "export", "backup.json"], { agent, cwd: tempDir(), stderrTTY });
    };
    const tty = await run(true);
    expect(tty.code).toBe(0);
    expect(tty.stderr).toMatch(/\r\x1b\[2Kdownloading the DO snapshot: \d+(\.\d)? KiB…/);
    expect((await run(false)).stderr).toBe("");
  });

  it("--from kv exports KV's do_cache_entries; - writes to stdout with the summary on stderr", async () => {
    const snap = await snapshot(4, values(2));
    const agent = mockAgent();
    agent.get("http://cf.test").intercept({ path: `${KV_PATH}/values/${ENTRIES_KEY}`, method: "GET" }).reply(200, JSON.stringify(snap));
    const r = await cli([...target, "export", "-", "--from", "kv"], { agent });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual(snap);
    expect(r.stderr).toMatch(/exported 2 entries \(generation 4, .*\) from KV to stdout/);
  });

  it("--ndjson writes one entry per line with its absolute times", async () => {
    const snap = await snapshot(4, { a: 1, b: { c: [true] } });
    const agent = mockAgent();
    agent.get(W).intercept({ path: "/api/v1/cache/snapshot", method: "GET" }).reply(200, ok(snap), json);
    const r = await cli([...target, "export", "--ndjson"], { agent });
    const lines = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toEqual(snap.entries.map(([key, e]) => ({ key, ...e })));
  });

  it("refuses a torn KV snapshot (exit 1), and a missing one (exit 1), writing nothing", async () => {
    const torn = await snapshot(4, values(2));
    torn.entries[0]![1].value = "tampered";
    const agent = mockAgent();
    agent.get("http://cf.test").intercept({ path: `${KV_PATH}/values/${ENTRIES_KEY}`, method: "GET" }).reply(200, JSON.stringify(torn));
    const dir = tempDir();
    const r = await cli([...target, "export", "out.json", "--from", "kv"], { agent, cwd: dir });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/KV's do_cache_entries is torn \(digest mismatch/);
    expect(existsSync(join(dir, "out.json"))).toBe(false);
    const gone = mockAgent();
    gone.get("http://cf.test").intercept({ path: `${KV_PATH}/values/${ENTRIES_KEY}`, method: "GET" }).reply(404, { success: false, errors: [{ code: 10009, message: "key not found" }], messages: [], result: null });
    const m = await cli([...target, "export", "--from", "kv"], { agent: gone });
    expect(m.code).toBe(1);
    expect(m.stderr).toMatch(/do_cache_entries is missing from KV/);
  });
});

/** One MockAgent reply, typed alike whatever the body. */
const answer = (statusCode: number, data: object | string, responseOptions: { headers: Record<string, string> } = json) => ({ statusCode, data: data as object, responseOptions });

/** A Worker that accepts a restore: stages chunks, commits, flushes, and (after) reports the restored state. */
async function restoreWorker(file: EntriesSnapshot, opts: { failChunk?: number; interruptOnChunk?: { n: number; ctrlC: CtrlC }; commitStatus?: number; limits?: { maxEntries?: number } } = {}) {
  const agent = mockAgent();
  const w = agent.get(W);
  const before = await snapshot(3, { old: 1 });
  w.intercept({ path: "/api/v1/cache/metadata", method: "GET" }).reply(200, ok(metadataFor(before, { limits: opts.limits ?? {} })), json);
  w.intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, ok({ ...liveStats(3), size: 1 }), json);
  const log: string[] = [];
  const chunks: number[] = [];
  let staged = 0;
  const stages = new Set<string>();
  w.intercept({ path: "/api/v1/cache/restore", method: "POST" })
    .reply((req) => {
      const body = JSON.parse(String(req.body));
      stages.add(body.stage);
      if (body.commit) {
        log.push(`commit ${body.commit.count} ${body.commit.digest}`);
        if (opts.commitStatus) return answer(opts.commitStatus, { success: false, error: { code: "bad_request", message: "staged entries hash to sha256:aaa, not the file's: nothing was changed" } });
        return answer(200, ok({ restored: file.entries.length, skippedExpired: 0, evicted: 0, generation: 10, digest: file.digest }));
      }
      chunks.push(body.entries.length);
      log.push(`stage ${body.entries.length}`);
      if (opts.failChunk === chunks.length) return answer(502, "<html>bad gateway</html>", { headers: { "content-type": "text/html" } });
      if (opts.interruptOnChunk?.n === chunks.length) opts.interruptOnChunk.ctrlC.press();
      staged += body.entries.length;
      return answer(200, ok({ stage: body.stage, staged }));
    })
    .persist();
  w.intercept({ path: (p) => p.startsWith("/api/v1/cache/restore/"), method: "DELETE" })
    .reply((req) => {
      log.push(`discard ${decodeURIComponent(req.path.split("/").pop()!)}`);
      return { statusCode: 200, data: ok({ stage: "x", discarded: staged }), responseOptions: json };
    })
    .persist();
  w.intercept({ path: "/api/v1/cache/flush", method: "POST" }).reply(() => {
    log.push("flush");
    return { statusCode: 200, data: ok({ generation: 10, digest: file.digest, writtenAt: Date.now(), entries: file.entries.length, written: true }), responseOptions: json };
  });
  // After the commit: the DO and KV both hold the file's contents (verify-kv's fast path).
  const after: EntriesSnapshot = { ...file, generation: 10 };
  w.intercept({ path: "/api/v1/cache/metadata", method: "GET" }).reply(200, ok(metadataFor(after)), json);
  const cf = agent.get("http://cf.test");
  cf.intercept({ path: `${KV_PATH}/values/${ENTRIES_KEY}`, method: "GET" }).reply(200, JSON.stringify(after));
  cf.intercept({ path: `${KV_PATH}/values/${STATS_KEY}`, method: "GET" }).reply(200, JSON.stringify(statsDoc(10, file.entries.length)));
  return { agent, log, chunks, stages };
}

function fileOf(snap: EntriesSnapshot): string {
  const dir = tempDir();
  writeFileSync(join(dir, "backup.json"), JSON.stringify(snap));
  return dir;
}

describe("restore", () => {
  it("stages the file in chunks, commits with the file's digest and count, flushes, and runs verify-kv's check", async () => {
    const file = await snapshot(7, values(3));
    const { agent, log, stages } = await restoreWorker(file);
    const r = await cli([...target, "restore", "backup.json", "--yes"], { agent, cwd: fileOf(file) });
    expect(r.stderr).toMatch(/uploading 3 entries in 1 chunk to stage cli-[a-z0-9]+-[0-9a-f]{16} \(invisible to the cache until the commit\)/);
    expect(log).toEqual(["stage 3", `commit 3 ${file.digest}`, "flush"]);
    expect(stages.size).toBe(1);
    expect([...stages][0]).toMatch(/^[A-Za-z0-9_-]{1,64}$/);
    expect(r.stdout).toMatch(new RegExp(`^restored 3 entries from backup\\.json \\(generation 10, ${file.digest}\\); digest equals the file's$`, "m"));
    expect(r.stdout).toMatch(/^flushed generation 10 to KV; checking it as verify-kv does:$/m);
    expect(r.stdout).toMatch(/verify-kv: OK, KV matches the DO/);
    expect(r.code).toBe(0);
  });

  it("chunks stay within 10,000 entries and 4 MiB each", async () => {
    const file = await snapshot(7, values(12_000));
    const { agent, chunks, log } = await restoreWorker(file, { limits: { maxEntries: 20_000 } });
    const r = await cli([...target, "--json", "restore", "backup.json", "--yes"], { agent, cwd: fileOf(file) });
    expect(r.code).toBe(0);
    expect(chunks).toEqual([10_000, 2_000]);
    expect(log.at(-2)).toBe(`commit 12000 ${file.digest}`);
    const big = await snapshot(7, values(400, 20_000)); // 8 MB of values
    const w2 = await restoreWorker(big);
    expect((await cli([...target, "restore", "backup.json", "--yes"], { agent: w2.agent, cwd: fileOf(big) })).code).toBe(0);
    expect(w2.chunks.length).toBeGreaterThanOrEqual(2);
    expect(w2.chunks.reduce((a, b) => a + b, 0)).toBe(400);
  });

  it("refuses without --yes when stdin is not a terminal, sending nothing", async () => {
    const file = await snapshot(7, values(2));
    const { agent, log } = await restoreWorker(file);
    const r = await cli([...target, "restore", "backup.json"], { agent, cwd: fileOf(file) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refusing to restore without --yes when stdin is not a terminal/);
    expect(r.stderr).toMatch(/this would replace the whole cache at http:\/\/worker\.test \(1 entries, generation 3\) with backup\.json's 2 entries/);
    expect(log).toEqual([]);
  });

  it("a file that does not match its own digest is refused before anything is sent", async () => {
    const file = await snapshot(7, values(2));
    file.entries[1]![1].value = "edited by hand";
    const r = await cli([...target, "restore", "backup.json", "--yes"], { agent: mockAgent(), cwd: fileOf(file) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/backup\.json does not match its own digest \(digest mismatch: .*\): it was altered or truncated; nothing was sent/);
  });

  it("an NDJSON export is not a backup restore reads: the message says to seed it", async () => {
    const dir = tempDir({ "x.ndjson": '{"key":"a","value":1,"expiresAt":1}\n{"key":"b","value":2,"expiresAt":1}\n' });
    const r = await cli([...target, "restore", "x.ndjson", "--yes"], { agent: mockAgent(), cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/hint: restore reads the snapshot format `tftcache export` writes \(not --ndjson\); to load NDJSON entries use `tftcache seed`/);
  });

  it("a failure mid-upload discards the stage and never commits: the old contents stay (exit 2)", async () => {
    const file = await snapshot(7, values(25_000));
    const { agent, log } = await restoreWorker(file, { failChunk: 2, limits: { maxEntries: 100_000 } });
    const r = await cli([...target, "restore", "backup.json", "--yes"], { agent, cwd: fileOf(file) });
    expect(r.code).toBe(2);
    expect(log.filter((l) => l.startsWith("commit"))).toEqual([]);
    expect(log.at(-1)).toMatch(/^discard cli-/);
    expect(r.stderr).toMatch(/restore failed while uploading chunk 2 of 3: .*nothing was restored, the cache keeps its old contents \(the staged upload was discarded\)/);
  });

  it("Ctrl-C mid-upload stops after the chunk in flight, discards the stage, never commits, and exits 130", async () => {
    const file = await snapshot(7, values(25_000));
    const ctrlC = new CtrlC();
    const { agent, log } = await restoreWorker(file, { interruptOnChunk: { n: 2, ctrlC }, limits: { maxEntries: 100_000 } });
    const r = await cli([...target, "restore", "backup.json", "--yes"], { agent, cwd: fileOf(file), ctrlC });
    expect(r.code).toBe(130);
    expect(log).toEqual(["stage 10000", "stage 10000", expect.stringMatching(/^discard cli-/)]);
    expect(r.stderr).toMatch(/interrupt: stopping after the chunk in flight; the cache keeps its old contents…/);
    expect(r.stderr).toMatch(/^error: interrupted: nothing was restored; the cache keeps its old contents \(the staged upload was discarded\)$/m);
  });

  it("a commit the Worker refuses (digest mismatch) changes nothing: the stage is discarded, exit 2", async () => {
    const file = await snapshot(7, values(2));
    const { agent, log } = await restoreWorker(file, { commitStatus: 400 });
    const r = await cli([...target, "restore", "backup.json", "--yes"], { agent, cwd: fileOf(file) });
    expect(r.code).toBe(2);
    expect(log).toEqual(["stage 2", `commit 2 ${file.digest}`, expect.stringMatching(/^discard /)]);
    expect(r.stderr).toMatch(/the commit failed: staged entries hash to sha256:aaa, not the file's: nothing was changed \(HTTP 400 bad_request\); nothing was changed/);
  });

  it("refuses a file larger than the cache's bounds unless --allow-eviction", async () => {
    const file = await snapshot(7, values(5));
    const { agent, log } = await restoreWorker(file, { limits: { maxEntries: 3 } });
    const r = await cli([...target, "restore", "backup.json", "--yes"], { agent, cwd: fileOf(file) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refusing to restore backup\.json: the file holds 5 entries, over the cache's bound of 3 \(CACHE_MAX_ENTRIES\)/);
    expect(log).toEqual([]);
  });
});

