import { reset, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { ENTRIES_KEY, STATS_KEY } from "../../protocol/index.js";
import type { CacheDurableObject } from "../../worker/cache/cache-do.js";
import { apiJson, cacheStub, countKvWrites, duringFirstKvCall, entryPath, putJson, stageOneRowRestore } from "../worker/helpers.js";
import { readKvJson } from "../worker/kv-fixtures.js";

beforeEach(() => reset());

describe("KV_SYNC_MODE=write-through (the original system, kept as the benchmark baseline)", () => {
  it("a restore answered after a PUT that arrived during its KV write reports its own generation with its own digest", async () => {
    const fileDigest = await stageOneRowRestore();
    const out = await runInDurableObject(cacheStub(), async (i: CacheDurableObject) => {
      // A PUT delivered while the restore's write-through flush writes KV (network I/O: other requests run).
      const kv = duringFirstKvCall(i, "put", () => i.putEntry({ key: "late", value: "9" }), { wait: false });
      const restored = await i.commitRestore("s1", { digest: fileDigest, count: 1 });
      await kv.done();
      kv.restore();
      return restored;
    });
    expect(out.ok).toBe(true);
    // The state the restore committed holds exactly the file's one row: its digest is the file's.
    expect(out.ok && out.data).toMatchObject({ generation: 1, restored: 1, digest: fileDigest });
  });

  it("writes each PUT on arrival, outside group commit, and answers each with the generation it wrote", async () => {
    const out = await runInDurableObject(cacheStub(), async (i: CacheDurableObject) => {
      const [a, b] = await Promise.all([i.putEntry({ key: "a", value: "1" }), i.putEntry({ key: "b", value: "2" })]);
      return [a.ok && a.data.generation, b.ok && b.data.generation];
    });
    expect(out).toEqual([1, 2]); // before: both answered 2, the generation after the second PUT's KV write
  });

  it("writes both KV keys on every mutation", async () => {
    await apiJson("/api/v1/cache/stats"); // construct the DO before wrapping its KV
    const writes = await countKvWrites();
    for (let i = 0; i < 25; i++) await putJson(entryPath(`k${i % 5}`), { value: i });
    await apiJson(entryPath("k1"), { method: "DELETE" });
    expect(writes.puts.length).toBe(2 * 26);
    expect(writes.puts.filter((k) => k === ENTRIES_KEY).length).toBe(26);
    expect(writes.puts.filter((k) => k === STATS_KEY).length).toBe(26);
    const kv = await readKvJson(ENTRIES_KEY);
    expect(kv.generation).toBe(26);
    expect(kv.entries).toHaveLength(4);
    expect((await apiJson("/api/v1/cache/stats")).body.data.kv).toMatchObject({ mode: "write-through", writesToday: 52, pendingSince: null });
  });

  it("still never fails a write when KV throws", async () => {
    await runInDurableObject(cacheStub(), (i: CacheDurableObject) => {
      i.sync.kv = { put: async () => { throw new Error("429 Too Many Requests"); } } as unknown as KVNamespace;
    });
    expect((await putJson(entryPath("a"), { value: 1 })).status).toBe(200);
    expect((await apiJson(entryPath("a"))).body.data.value).toBe(1);
    expect((await apiJson("/api/v1/cache/stats")).body.data.kv.lastError).toMatch(/429/);
  });
});
