import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { ENTRIES_KEY, STATS_KEY, digestEntries, type EntriesSnapshot } from "../../protocol/index.js";
import { KV_PATH, cli, json, mockAgent, ok, target } from "./harness.js";
import { metadataFor, snapshot, statsDoc } from "./fixtures.js";
import { buildSnapshotBody, snapshotText, type LiveEntry } from "../../worker/cache/snapshot-builder.js";

const values = (n: number, prefix = "k", v = (i: number): unknown => ({ i })) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`${prefix}${String(i).padStart(3, "0")}`, v(i)]));

/** The DO's record of a body it flushed, as /metadata names it. */
function flushedRecord(text: string) {
  const snap = JSON.parse(text) as EntriesSnapshot;
  const expiries = snap.entries.map(([, e]) => e.expiresAt);
  return {
    generation: snap.generation,
    digest: snap.digest,
    sha256: `sha256:${createHash("sha256").update(text).digest("hex")}`,
    writtenAt: snap.writtenAt,
    entries: snap.entries.length,
    validUntil: expiries.length === 0 ? null : Math.min(...expiries),
  };
}

/**
 * The Worker's /metadata for `doValues` at `doGen`, and KV holding `kvText`. /snapshot answers only when
 * `snapshotAllowed`; otherwise a call to it fails the run (MockAgent has no such route), so a passing run proves
 * it was not called.
 */
async function scenario(opts: { doValues: Record<string, unknown>; doGen: number; kvText: string; kvStatsGen?: number; snapshotAllowed: boolean; flushedText?: string }) {
  const agent = mockAgent();
  const w = agent.get("http://worker.test");
  const doSnap = await snapshot(opts.doGen, opts.doValues);
  const flushed = opts.flushedText === undefined ? null : flushedRecord(opts.flushedText);
  w.intercept({ path: "/api/v1/cache/metadata", method: "GET" }).reply(200, ok(metadataFor(doSnap, { flushed })), json);
  let snapshotCalls = 0;
  if (opts.snapshotAllowed) w.intercept({ path: "/api/v1/cache/snapshot", method: "GET" }).reply(200, () => (snapshotCalls++, ok(doSnap)), json);
  const cf = agent.get("http://cf.test");
  cf.intercept({ path: `${KV_PATH}/values/${ENTRIES_KEY}`, method: "GET" }).reply(200, opts.kvText);
  cf.intercept({ path: `${KV_PATH}/values/${STATS_KEY}`, method: "GET" }).reply(200, JSON.stringify(statsDoc(opts.kvStatsGen ?? opts.doGen, Object.keys(opts.doValues).length)));
  return { agent, calls: () => snapshotCalls };
}

describe("verify-kv and diff: the fast path when the digests prove equality", () => {
  it("KV at the DO's generation with the DO's digest: no /snapshot, every entry reported as a match", async () => {
    const v = values(50);
    const { agent } = await scenario({ doValues: v, doGen: 9, kvText: JSON.stringify(await snapshot(9, v)), snapshotAllowed: false });
    const r = await cli([...target, "--json", "verify-kv"], { agent });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report).toMatchObject({ status: "match", counts: { match: 50, differ: 0, onlyInDo: 0, onlyInKv: 0 }, items: [], do: { generation: 9, entries: 50 }, problems: [] });
    const human = await cli([...target, "verify-kv"], { agent: (await scenario({ doValues: v, doGen: 9, kvText: JSON.stringify(await snapshot(9, v)), snapshotAllowed: false })).agent });
    expect(human.stdout).toMatch(/50 match, 0 differ, 0 only in DO, 0 only in KV/);
    expect(human.stdout).toMatch(/verify-kv: OK/);
  });

  it("--full downloads the DO's snapshot and compares every key even when the digests agree", async () => {
    const v = values(20);
    const { agent, calls } = await scenario({ doValues: v, doGen: 9, kvText: JSON.stringify(await snapshot(9, v)), snapshotAllowed: true });
    const r = await cli([...target, "--json", "verify-kv", "--full"], { agent });
    expect(r.code).toBe(0);
    expect(calls()).toBe(1);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: "match", counts: { match: 20 } });
  });

  it("diff --all on the fast path still lists every key as a match, as the per-key compare would", async () => {
    const v = values(3);
    const { agent } = await scenario({ doValues: v, doGen: 2, kvText: JSON.stringify(await snapshot(2, v)), snapshotAllowed: false });
    const r = await cli([...target, "diff", "--all"], { agent });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual(["= k000", "= k001", "= k002"]);
  });

  it("a tampered KV entry with a digest recomputed to match it (a different digest): the full per-key report", async () => {
    const v = values(5);
    const tampered = await snapshot(9, { ...v, k002: { i: 999 } });
    const { agent, calls } = await scenario({ doValues: v, doGen: 9, kvText: JSON.stringify(tampered), snapshotAllowed: true });
    const r = await cli([...target, "--json", "verify-kv"], { agent });
    expect(r.code).toBe(1);
    expect(calls()).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.counts).toEqual({ match: 4, differ: 1, onlyInDo: 0, onlyInKv: 0 });
    expect(report.items).toEqual([{ key: "k002", status: "differ", fields: ["value"] }]);
    expect(report.problems).toEqual(["entries differ: 1 changed, 0 only in the DO, 0 only in KV"]);
  });

  it("a tampered KV entry under the DO's own digest (torn): never the fast path, the key is named", async () => {
    const v = values(5);
    const kv = await snapshot(9, v);
    const doDigest = kv.digest;
    kv.entries[3]![1].value = { i: -1 };
    expect(kv.digest).toBe(doDigest);
    expect(await digestEntries(kv.entries)).not.toBe(doDigest);
    const { agent, calls } = await scenario({ doValues: v, doGen: 9, kvText: JSON.stringify(kv), snapshotAllowed: true });
    const r = await cli([...target, "verify-kv"], { agent });
    expect(r.code).toBe(1);
    expect(calls()).toBe(1);
    expect(r.stdout).toMatch(/^~ k003  \(value\)$/m);
    expect(r.stdout).toMatch(/do_cache_entries is torn: digest mismatch/);
  });

  it("the same digest at another generation (KV behind, content equal) goes the slow way and reports the lag", async () => {
    const v = values(2);
    const { agent, calls } = await scenario({ doValues: v, doGen: 8, kvText: JSON.stringify(await snapshot(7, v)), kvStatsGen: 7, snapshotAllowed: true });
    const r = await cli([...target, "verify-kv"], { agent });
    expect(calls()).toBe(1);
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/KV is behind the DO by 1 generation/);
  });
});

describe("verify-kv: KV bytes equal to the body the DO flushed (its recorded SHA-256)", () => {
  it("hashing to the DO's record is enough: match, no /snapshot", async () => {
    const v = values(40);
    const text = JSON.stringify(await snapshot(6, v));
    const { agent } = await scenario({ doValues: v, doGen: 6, kvText: text, flushedText: text, snapshotAllowed: false });
    const r = await cli([...target, "--json", "verify-kv"], { agent });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: "match", counts: { match: 40, differ: 0 }, kv: { entries: { state: "present", generation: 6, entries: 40 } } });
  });

  it("one value changed behind the DO's back, generation and digest claims kept: the hash differs, the key is named", async () => {
    const v = values(8);
    const written = await snapshot(6, v);
    const text = JSON.stringify(written);
    const tampered = JSON.parse(text) as typeof written;
    tampered.entries[5]![1].value = { i: 555 };
    const { agent, calls } = await scenario({ doValues: v, doGen: 6, kvText: JSON.stringify(tampered), flushedText: text, snapshotAllowed: true });
    const r = await cli([...target, "--json", "verify-kv"], { agent });
    expect(r.code).toBe(1);
    expect(calls()).toBe(1);
    const report = JSON.parse(r.stdout);
    expect(report.kv.entries.state).toBe("torn");
    expect(report.items).toEqual([{ key: "k005", status: "differ", fields: ["value"] }]);
  });

  it("an entry expired since the flush: KV is read, not taken from the record, and the expired entry is not counted", async () => {
    const v = values(6);
    const written = await snapshot(6, v);
    written.entries[2]![1].expiresAt = Date.now() - 1000; // expired after the flush wrote it (the DO would not have written it expired)
    written.writtenAt = Date.now() - 5000;
    const text = JSON.stringify(written);
    const agent = mockAgent();
    const w = agent.get("http://worker.test");
    // The DO has not swept yet: same generation, its digest still the flushed one.
    w.intercept({ path: "/api/v1/cache/metadata", method: "GET" }).reply(200, ok(metadataFor(written, { flushed: flushedRecord(text) })), json);
    const cf = agent.get("http://cf.test");
    cf.intercept({ path: `${KV_PATH}/values/${ENTRIES_KEY}`, method: "GET" }).reply(200, text);
    cf.intercept({ path: `${KV_PATH}/values/${STATS_KEY}`, method: "GET" }).reply(200, JSON.stringify(statsDoc(6, 6)));
    const r = await cli([...target, "--json", "verify-kv"], { agent });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: "match", counts: { match: 5 }, kv: { entries: { entries: 6 } } });
  });

  it("diff --all wants every key: with bytes equal to the record, KV is parsed and every key listed", async () => {
    const v = values(3);
    const text = JSON.stringify(await snapshot(4, v));
    const { agent } = await scenario({ doValues: v, doGen: 4, kvText: text, flushedText: text, snapshotAllowed: false });
    const r = await cli([...target, "diff", "--all"], { agent });
    expect(r.code).toBe(0);
    expect(r.stdout.trim().split("\n")).toEqual(["= k000", "= k001", "= k002"]);
  });

  it("the same content re-serialised by another writer (other bytes): verified in full, and still a match", async () => {
    const v = values(4);
    const written = await snapshot(6, v);
    const { agent } = await scenario({ doValues: v, doGen: 6, kvText: JSON.stringify(written, null, 2), flushedText: JSON.stringify(written), snapshotAllowed: false });
    const r = await cli([...target, "--json", "verify-kv"], { agent });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toMatchObject({ status: "match", counts: { match: 4 } });
  });
});

describe("readable at scale: the first 20 items, then how many more", () => {
  it("diff prints 20 of 45 differences and '… and 25 more (use --all or --json)'; --all and --json list all", async () => {
    const doValues = values(45, "k", (i) => i);
    const kvText = JSON.stringify(await snapshot(5, values(45, "k", (i) => i + 1000)));
    const run = async (args: string[]) => cli([...target, ...args], { agent: (await scenario({ doValues, doGen: 5, kvText, snapshotAllowed: true })).agent });
    const human = await run(["diff"]);
    expect(human.code).toBe(1);
    const lines = human.stdout.trim().split("\n");
    expect(lines).toHaveLength(21);
    expect(lines[0]).toBe("~ k000  (value)");
    expect(lines[19]).toBe("~ k019  (value)");
    expect(lines[20]).toBe("… and 25 more (use --all or --json)");
    expect(human.stderr).toMatch(/0 match \(=\), 45 differ \(~\)/);
    const all = await run(["diff", "--all"]);
    expect(all.stdout.trim().split("\n")).toHaveLength(45);
    expect(all.stdout).not.toMatch(/more \(use/);
    const asJson = await run(["--json", "diff"]);
    expect(JSON.parse(asJson.stdout).items).toHaveLength(45);
  });

  it("verify-kv bounds its list the same way, and --all lifts it", async () => {
    const doValues = values(30, "k", (i) => i);
    const kvText = JSON.stringify(await snapshot(5, {}));
    const run = async (args: string[]) => cli([...target, ...args], { agent: (await scenario({ doValues, doGen: 5, kvText, snapshotAllowed: true })).agent });
    const human = await run(["verify-kv"]);
    expect(human.code).toBe(1);
    expect(human.stdout.match(/^\+ k\d{3}$/gm)).toHaveLength(20);
    expect(human.stdout).toMatch(/^… and 10 more \(use --all or --json\)$/m);
    expect(human.stdout).toMatch(/entries differ: 0 changed, 30 only in the DO, 0 only in KV/);
    const all = await run(["verify-kv", "--all"]);
    expect(all.stdout.match(/^\+ k\d{3}$/gm)).toHaveLength(30);
    const asJson = await run(["--json", "verify-kv"]);
    expect(JSON.parse(asJson.stdout).items).toHaveLength(30);
  });
});

describe("verify-kv on a snapshot that holds a row stale-if-error keeps past its expiry (as the DO writes it)", () => {
  /** The DO's own builder: two live entries and one expired 5 s before the flush, kept for 55 s more. */
  async function heldSnapshot(now: number) {
    const row = (value: string, expiresAt: number, retainUntil?: number): LiveEntry => ({ value, expiresAt, cachedAt: now - 15_000, lastAccessed: now - 15_000, size: 100, ...(retainUntil === undefined ? {} : { retainUntil }) });
    const body = await buildSnapshotBody([["k000", row('{"i":0}', now + 3_600_000)], ["quote:KEPT", row('{"px":5}', now - 5_000, now + 55_000)], ["k001", row('{"i":1}', now + 3_600_000)]], now);
    const text = snapshotText(body, 7, now).text;
    const flushed = { generation: 7, digest: body.digest, sha256: `sha256:${createHash("sha256").update(text).digest("hex")}`, writtenAt: now, entries: body.live, validUntil: body.validUntil };
    return { text, body, flushed, doc: JSON.parse(text) as EntriesSnapshot };
  }

  function agentFor(s: Awaited<ReturnType<typeof heldSnapshot>>, withSnapshot: boolean) {
    const agent = mockAgent();
    const w = agent.get("http://worker.test");
    w.intercept({ path: "/api/v1/cache/metadata", method: "GET" }).reply(200, ok(metadataFor(s.doc, { flushed: s.flushed, size: 2 })), json);
    if (withSnapshot) w.intercept({ path: "/api/v1/cache/snapshot", method: "GET" }).reply(200, ok(s.doc), json);
    const cf = agent.get("http://cf.test");
    cf.intercept({ path: `${KV_PATH}/values/${ENTRIES_KEY}`, method: "GET" }).reply(200, s.text);
    cf.intercept({ path: `${KV_PATH}/values/${STATS_KEY}`, method: "GET" }).reply(200, JSON.stringify(statsDoc(7, 2)));
    return agent;
  }

  it("the record counts the live entries (2 of 3 rows) and verify-kv passes on every path: record, parsed, --full", async () => {
    const s = await heldSnapshot(Date.now());
    expect({ count: s.body.count, live: s.body.live }).toEqual({ count: 3, live: 2 });
    expect(s.body.validUntil).toBe(s.flushed.writtenAt + 55_000); // the kept row leaves first
    for (const args of [["verify-kv"], ["verify-kv", "--full"], ["diff", "--all"]]) {
      const r = await cli([...target, "--json", ...args], { agent: agentFor(s, args.length > 1) });
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      // The same counts on every path: entries live when written, not rows (the kept one is expired).
      expect(JSON.parse(r.stdout)).toMatchObject({ status: "match", counts: { match: 2, differ: 0, onlyInDo: 0, onlyInKv: 0 }, kv: { entries: { entries: 2 } }, do: { entries: 2 }, problems: [] });
    }
  });
});
