import { describe, expect, it } from "vitest";
import {
  canonicalJson,
  checkDigest,
  digestEntries,
  keyProblem,
  parseEntriesSnapshot,
  parseStatsSnapshot,
  ttlProblem,
  type EntriesSnapshot,
} from "../../protocol/index.js";

const entry = (value: unknown, expiresAt = 2_000_000_000_000) => ({ value, expiresAt, lastAccessed: 1, cachedAt: 1 });

async function snapshotOf(entries: Array<[string, ReturnType<typeof entry>]>): Promise<EntriesSnapshot> {
  return { format: 1, generation: 3, writtenAt: 5, digest: await digestEntries(entries), entries };
}

describe("canonicalJson", () => {
  it("sorts object keys recursively and keeps array order", () => {
    expect(canonicalJson({ b: 1, a: { d: [3, { z: 1, y: 2 }], c: null } })).toBe('{"a":{"c":null,"d":[3,{"y":2,"z":1}]},"b":1}');
  });

  it("writes numbers and strings exactly as JSON.stringify does", () => {
    for (const v of [0, -0, 1e21, 1.5e-7, 123456789.123, "é\u2028\"\\", true, null]) {
      expect(canonicalJson(v)).toBe(JSON.stringify(v));
    }
  });

  it("sorts by UTF-16 code units, not by code point or locale", () => {
    // U+FF5E (one unit 0xFF5E) sorts after U+1F600 (surrogates 0xD83D…): the default JS order.
    expect(canonicalJson({ "\uff5e": 1, "\u{1f600}": 2, B: 3, a: 4 })).toBe(`{"B":3,"a":4,"\u{1f600}":2,"\uff5e":1}`);
  });
});

describe("digest", () => {
  it("is stable across entry order and object key order", async () => {
    const a = await digestEntries([["x", entry({ p: 1, q: 2 })], ["y", entry([1, 2])]]);
    const b = await digestEntries([["y", entry([1, 2])], ["x", entry({ q: 2, p: 1 })]]);
    expect(a).toBe(b);
    expect(a).toMatch(/^sha256:[0-9a-f]{64}$/);
  });

  it("matches the contract's definition computed independently", async () => {
    const entries: Array<[string, ReturnType<typeof entry>]> = [["b", entry({ z: 1, a: 2 }, 10)], ["a", entry("s", 20)]];
    const rows = [["a", "s", 20], ["b", { a: 2, z: 1 }, 10]];
    const bytes = new TextEncoder().encode(JSON.stringify(rows));
    const hex = [...new Uint8Array(await crypto.subtle.digest("SHA-256", bytes))].map((b) => b.toString(16).padStart(2, "0")).join("");
    expect(await digestEntries(entries)).toBe(`sha256:${hex}`);
  });

  it("changes when a value, a key or an expiry changes, but not when lastAccessed does", async () => {
    const base = await digestEntries([["k", entry(1, 10)]]);
    expect(await digestEntries([["k", entry(2, 10)]])).not.toBe(base);
    expect(await digestEntries([["k2", entry(1, 10)]])).not.toBe(base);
    expect(await digestEntries([["k", entry(1, 11)]])).not.toBe(base);
    const touched = { ...entry(1, 10), lastAccessed: 99 };
    expect(await digestEntries([["k", touched]])).toBe(base);
  });

  it("detects a torn snapshot", async () => {
    const snap = await snapshotOf([["k", entry({ price: 10 })]]);
    expect((await checkDigest(snap)).intact).toBe(true);
    snap.entries[0]![1].value = { price: 11 };
    const verdict = await checkDigest(snap);
    expect(verdict.intact).toBe(false);
    expect(verdict.actual).not.toBe(snap.digest);
  });
});

describe("parseEntriesSnapshot", () => {
  it("accepts a well-formed snapshot", async () => {
    const snap = await snapshotOf([["k", entry(1)]]);
    const parsed = parseEntriesSnapshot(JSON.stringify(snap));
    expect(parsed.ok && parsed.value.generation).toBe(3);
  });

  it.each([
    ["not JSON", "{oops", /not valid JSON/],
    ["an array", "[]", /not a JSON object/],
    ["a wrong format", JSON.stringify({ format: 2 }), /unsupported format/],
    ["a negative generation", JSON.stringify({ format: 1, generation: -1 }), /generation/],
    ["no digest", JSON.stringify({ format: 1, generation: 1, writtenAt: 1, entries: [] }), /digest/],
    ["entries not pairs", JSON.stringify({ format: 1, generation: 1, writtenAt: 1, digest: "sha256:x", entries: [["k"]] }), /entries\[0\]/],
    ["an entry without value", JSON.stringify({ format: 1, generation: 1, writtenAt: 1, digest: "sha256:x", entries: [["k", { expiresAt: 1, lastAccessed: 1, cachedAt: 1 }]] }), /no value/],
    ["a duplicated key", JSON.stringify({ format: 1, generation: 1, writtenAt: 1, digest: "sha256:x", entries: [["k", entry(1)], ["k", entry(2)]] }), /repeats key/],
  ])("rejects %s with a reason", (_, text, reason) => {
    const parsed = parseEntriesSnapshot(text);
    expect(parsed.ok).toBe(false);
    if (!parsed.ok) expect(parsed.error).toMatch(reason);
  });
});

describe("parseStatsSnapshot", () => {
  it("accepts the contract's shape and rejects missing counters", () => {
    const stats = { format: 1, generation: 2, writtenAt: 1, size: 1, bytes: 10, hits: 1, misses: 0, evictions: 0, expirations: 0, hitRate: 1, oldestEntry: 1, newestEntry: 1, kvWritesToday: 2 };
    expect(parseStatsSnapshot(JSON.stringify(stats)).ok).toBe(true);
    const { hits: _drop, ...broken } = stats;
    const parsed = parseStatsSnapshot(JSON.stringify(broken));
    expect(parsed.ok).toBe(false);
  });
});

describe("input limits", () => {
  it("rejects empty, oversized, non-string and dot-segment keys", () => {
    expect(keyProblem("")).toMatch(/empty/);
    expect(keyProblem("x".repeat(513))).toMatch(/512/);
    expect(keyProblem("é".repeat(257))).toMatch(/512/); // 514 UTF-8 bytes
    expect(keyProblem("é".repeat(256))).toBeNull(); // exactly 512 bytes
    expect(keyProblem(42)).toMatch(/string/);
    expect(keyProblem("..")).toMatch(/'\.\.'/);
    expect(keyProblem("\ud800")).toMatch(/surrogate/);
  });

  it("accepts positive finite TTLs only", () => {
    expect(ttlProblem(undefined)).toBeNull();
    expect(ttlProblem(60)).toBeNull();
    for (const bad of [0, -1, Number.NaN, Infinity, "60", 1e12]) expect(ttlProblem(bad)).not.toBeNull();
  });
});
