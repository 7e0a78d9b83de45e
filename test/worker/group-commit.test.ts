import { abortAllDurableObjects, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { CacheDurableObject } from "../../worker/cache/cache-do.js";
import { GroupCommit } from "../../worker/cache/group-commit.js";
import { apiJson, cacheStub, duringFirstKvCall, entryPath, freshState, putJson, stageOneRowRestore } from "./helpers.js";

beforeEach(freshState);

type CountedStore = { transaction: <T>(fn: () => T) => T; commits?: number; depth?: number; maxDepth?: number };

/** Counts the DO's storage transactions from now on (each one is a commit the runtime pays for), and how deep they nest. */
async function countTransactions(): Promise<{ commits: () => Promise<number>; maxDepth: () => Promise<number> }> {
  await runInDurableObject(cacheStub(), (instance: CacheDurableObject) => {
    const store = instance.store as unknown as CountedStore;
    const original = store.transaction.bind(store);
    store.commits = 0;
    store.depth = 0;
    store.maxDepth = 0;
    store.transaction = (fn) => {
      store.commits!++;
      store.maxDepth = Math.max(store.maxDepth!, ++store.depth!);
      try {
        return original(fn);
      } finally {
        store.depth!--;
      }
    };
  });
  const read = (field: "commits" | "maxDepth") => () => runInDurableObject(cacheStub(), (instance: CacheDurableObject) => (instance.store as unknown as CountedStore)[field]!);
  return { commits: read("commits"), maxDepth: read("maxDepth") };
}

describe("group commit: PUTs that arrive together share one storage transaction", () => {
  it("PUTs made in one turn are one transaction, each answered with its own generation, all durable", async () => {
    await apiJson("/api/v1/cache/stats"); // the instance exists before its transactions are counted
    const { commits } = await countTransactions();
    // Called in one turn inside the object, so all 40 are queued before the batch runs: one commit, exactly.
    const results = await runInDurableObject(cacheStub(), (instance: CacheDurableObject) =>
      Promise.all(Array.from({ length: 40 }, (_, i) => instance.putEntry({ key: `k${i}`, value: JSON.stringify({ i }) }))),
    );
    expect(results.every((r) => r.ok)).toBe(true);
    const generations = results.map((r) => (r.ok ? r.data.generation : -1));
    expect(generations).toEqual(Array.from({ length: 40 }, (_, i) => i + 1)); // one generation per write, in order
    expect(await commits()).toBe(1);
    // Acknowledged means written: every entry survives the DO's restart.
    await abortAllDurableObjects();
    const m = (await apiJson("/api/v1/cache/metadata")).body.data;
    expect(m).toMatchObject({ generation: 40, size: 40, load: { source: "do" } });
    for (const i of [0, 17, 39]) expect((await apiJson(entryPath(`k${i}`))).body.data.value).toEqual({ i });
  });

  it("40 PUTs sent at once through a stub all land, each with its own generation", async () => {
    const stub = cacheStub();
    const results = await Promise.all(Array.from({ length: 40 }, (_, i) => stub.putEntry({ key: `k${i}`, value: JSON.stringify({ i }) })));
    const generations = results.map((r) => (r.ok ? r.data.generation : -1)).sort((a, b) => a - b);
    expect(generations).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    expect((await apiJson("/api/v1/cache/metadata")).body.data).toMatchObject({ generation: 40, size: 40 });
  });

  it("a call that arrives after a PUT sees it, though the PUT's batch has not been written yet", async () => {
    // Called in one turn, in this order, inside the object: every PUT below is still queued when the calls after
    // it run, so each of those must apply the queue first.
    const [p, r, o, d, l, pb, stats] = await runInDurableObject(cacheStub(), (instance: CacheDurableObject) => {
      const put = instance.putEntry({ key: "a", value: '"first"' });
      const read = instance.getEntry("a");
      const overwrite = instance.putEntry({ key: "a", value: '"second"' });
      const del = instance.deleteEntry("b");
      const listed = instance.listKeys({});
      const putB = instance.putEntry({ key: "b", value: '"kept"' });
      const size = instance.stats().size;
      return Promise.all([put, read, overwrite, del, listed, putB, size]);
    });
    expect(p.ok && r.ok && o.ok && pb.ok).toBe(true);
    expect(r.ok && r.data.valueJson).toBe('"first"'); // the read came after the first PUT, before the second
    expect(d.ok).toBe(false); // b did not exist yet when the delete arrived
    expect(l.keys.map((k) => k.key)).toEqual(["a"]); // the listing came after a's PUTs and before b's
    expect(stats).toBe(2); // stats came after both
    expect((await apiJson(entryPath("a"))).body.data.value).toBe("second");
    expect((await apiJson(entryPath("b"))).body.data.value).toBe("kept");
  });

  it("a seed, purge or clear that arrives after a queued PUT applies it first, outside its own transaction", async () => {
    await apiJson("/api/v1/cache/stats");
    const { maxDepth } = await countTransactions();
    const out = await runInDurableObject(cacheStub(), async (instance: CacheDurableObject) => {
      const put = instance.putEntry({ key: "p:1", value: "1" });
      const seeded = instance.seed([{ key: "s:1", value: "2" }]);
      const put2 = instance.putEntry({ key: "p:2", value: "3" });
      const purged = instance.purgePrefix("p:");
      const put3 = instance.putEntry({ key: "q:1", value: "4" });
      const cleared = instance.clear("do");
      return Promise.all([put, seeded, put2, purged, put3, cleared]);
    });
    const [p, s, p2, purge, p3, clear] = out;
    expect([p.ok, s.ok, p2.ok, purge.ok, p3.ok]).toEqual([true, true, true, true, true]);
    expect(purge.ok && purge.data.deleted).toBe(2); // both p: keys were there when the purge arrived
    expect(clear.deletedEntries).toBe(2); // s:1 and q:1
    expect((await apiJson("/api/v1/cache/metadata")).body.data.size).toBe(0);
    // Never inside another change's transaction: a change that failed and rolled back would take with it a PUT
    // whose caller had already been told it was written.
    expect(await maxDepth()).toBe(1);
  });

  // Found by review: these read the generation (or KV's state) before anything else touched the cache.
  it("a snapshot taken after a queued PUT holds it, under the PUT's generation", async () => {
    await cacheStub().putEntry({ key: "a", value: "1" });
    await cacheStub().flush();
    const [p, snap] = await runInDurableObject(cacheStub(), (i: CacheDurableObject) => Promise.all([i.putEntry({ key: "b", value: "2" }), i.snapshot()]));
    expect(p.ok && p.data.generation).toBe(2);
    expect(snap.generation).toBe(2);
    expect(JSON.parse(snap.text).entries.map(([k]: [string]) => k)).toEqual(["a", "b"]);
  });

  it("metadata after a queued PUT pairs the PUT's generation with that state's digest", async () => {
    await cacheStub().putEntry({ key: "a", value: "1" });
    await cacheStub().flush();
    const [, md] = await runInDurableObject(cacheStub(), (i: CacheDurableObject) => Promise.all([i.putEntry({ key: "b", value: "2" }), i.metadata()]));
    const real = await cacheStub().snapshot();
    expect(md.generation).toBe(real.generation);
    expect(md.digest).toBe(real.digest);
  });

  it("a flush after a queued PUT writes it to KV", async () => {
    await cacheStub().putEntry({ key: "a", value: "1" });
    await cacheStub().flush();
    const [p, f] = await runInDurableObject(cacheStub(), (i: CacheDurableObject) => Promise.all([i.putEntry({ key: "b", value: "2" }), i.flush()]));
    expect(p.ok && p.data.generation).toBe(2);
    expect(f.generation).toBe(2);
  });

  it("a restore committed while a PUT is queued: distinct generations, and storage agrees with memory across a restart", async () => {
    await cacheStub().putEntry({ key: "a", value: "1" });
    const digest = await stageOneRowRestore();
    const out = await runInDurableObject(cacheStub(), async (i: CacheDurableObject) => {
      // The restore waits (its digest check) before it changes anything: the PUT is queued meanwhile.
      const [restored, put] = await Promise.all([i.commitRestore("s1", { digest, count: 1 }), i.putEntry({ key: "b", value: "2" })]);
      const stored = i.store.loadMeta();
      return { restored, put, stored: stored.generation, memory: i.stats().generation };
    });
    expect(out.restored.ok && out.put.ok).toBe(true);
    const generations = [out.restored.ok && out.restored.data.generation, out.put.ok && out.put.data.generation];
    expect(new Set(generations).size).toBe(2);
    expect(out.stored).toBe(out.memory);
    await abortAllDurableObjects();
    expect((await apiJson("/api/v1/cache/metadata")).body.data.generation).toBe(out.memory);
  });

  // Found by a second review.
  it("a getOrSet after a queued PUT of a key it had cached as not found answers with the PUT's value", async () => {
    const out = await runInDurableObject(cacheStub(), async (i: CacheDurableObject) => {
      const first = await i.getOrSet("n", () => undefined, { negativeTtlSeconds: 60 });
      let loaderRan = false;
      const [, after] = await Promise.all([
        i.putEntry({ key: "n", value: "1" }),
        i.getOrSet("n", () => ((loaderRan = true), 2), { negativeTtlSeconds: 60 }),
      ]);
      return { first, after, loaderRan };
    });
    expect(out.first.ok && out.first.data.notFound).toBe(true);
    expect(out.after.ok && out.after.data.valueJson).toBe("1");
    expect(out.loaderRan).toBe(false);
  });

  it("a DELETE, seed or purge answered after a later PUT was applied reports its own generation, not the PUT's", async () => {
    await cacheStub().putEntry({ key: "a", value: "1" });
    await cacheStub().putEntry({ key: "p:1", value: "1" });
    const out = await runInDurableObject(cacheStub(), async (i: CacheDurableObject) => {
      const [d, p] = await Promise.all([i.deleteEntry("a"), i.putEntry({ key: "b", value: "2" })]);
      const [s, p2] = await Promise.all([i.seed([{ key: "c", value: "3" }]), i.putEntry({ key: "e", value: "4" })]);
      const [pg, p3] = await Promise.all([i.purgePrefix("p:"), i.putEntry({ key: "f", value: "5" })]);
      const g = (r: { ok: boolean; data?: { generation: number } }) => (r.ok ? r.data!.generation : -1);
      return [g(d), g(p), g(s), g(p2), g(pg), g(p3)];
    });
    expect(out).toEqual([3, 4, 5, 6, 7, 8]);
  });

  it("a PUT applied while clear() is deleting KV's keys stays owed to KV", async () => {
    const out = await runInDurableObject(cacheStub(), async (i: CacheDurableObject) => {
      await i.putEntry({ key: "a", value: "1" });
      await i.flush();
      // The PUT is made, and answered, from inside the first KV delete: while clear() is under way.
      const kv = duringFirstKvCall(i, "delete", () => i.putEntry({ key: "b", value: "2" }));
      const cleared = await i.clear("all");
      kv.restore();
      return { cleared, put: await kv.done(), pending: i.sync.isPending, size: i.stats().size };
    });
    expect(out.cleared.kvKeysDeleted).toBe(true);
    expect(out.size).toBe(1); // b
    expect(out.pending).toBe(true); // b is in the DO and not in KV: a flush is owed
  });

  it("a PUT batch that fails while a restore waits leaves storage's entry count true", async () => {
    for (const k of ["a1", "a2", "a3"]) await cacheStub().putEntry({ key: k, value: "1" });
    const digest = await stageOneRowRestore();
    const out = await runInDurableObject(cacheStub(), async (i: CacheDurableObject) => {
      const original = i.store.putEntry.bind(i.store);
      i.store.putEntry = (k, e) => {
        if (k === "bad") throw new Error("injected SQLite failure");
        original(k, e);
      };
      const [restored, put] = await Promise.allSettled([i.commitRestore("s1", { digest, count: 1 }), i.putEntry({ key: "bad", value: "9" })]);
      i.store.putEntry = original;
      return { restored: restored.status === "fulfilled" ? restored.value : null, put: put.status, meta: i.store.loadMeta().entryCount, rows: i.store.countEntries().count };
    });
    expect(out.put).toBe("rejected");
    expect(out.restored?.ok && out.restored.data.restored).toBe(1);
    expect(out.meta).toBe(out.rows);
    expect(out.rows).toBe(1);
  });

  // Found by a third review.
  it("a PUT batch whose transaction fails leaves nothing owed to KV, in memory as in storage", async () => {
    const out = await runInDurableObject(cacheStub(), async (i: CacheDurableObject) => {
      await i.putEntry({ key: "a", value: "1" });
      await i.flush();
      const original = i.store.writeMeta.bind(i.store);
      i.store.writeMeta = (m: Parameters<typeof original>[0]) => {
        if ("generation" in m) throw new Error("injected: meta write fails");
        original(m);
      };
      const put = await i.putEntry({ key: "b", value: "2" }).then(() => "fulfilled", (e: Error) => `rejected: ${e.message}`);
      i.store.writeMeta = original;
      return { put, pending: i.sync.isPending, generation: i.stats().generation, flushed: i.sync.status().flushedGeneration, stored: i.store.loadMeta().kvPendingSince };
    });
    expect(out.put).toMatch(/^rejected: injected/);
    expect(out.generation).toBe(out.flushed); // nothing changed: KV holds the DO's generation
    expect(out.stored).toBeNull();
    expect(out.pending).toBe(false);
  });

  it("a PUT followed at once by a DELETE of the same key leaves it deleted, in memory and after a restart", async () => {
    const [p, d] = await runInDurableObject(cacheStub(), (instance: CacheDurableObject) => Promise.all([instance.putEntry({ key: "gone", value: "1" }), instance.deleteEntry("gone")]));
    expect(p.ok && d.ok).toBe(true);
    expect((await apiJson(entryPath("gone"))).status).toBe(404);
    await abortAllDurableObjects();
    expect((await apiJson(entryPath("gone"))).status).toBe(404);
  });

  it("PUTs over HTTP still answer 200 with the entry's generation and expiry", async () => {
    const [a, b] = await Promise.all([putJson(entryPath("x"), { value: 1 }), putJson(entryPath("y"), { value: 2, ttlSeconds: 60 })]);
    expect(a.status).toBe(200);
    expect(b.status).toBe(200);
    expect(new Set([a.body.data.generation, b.body.data.generation]).size).toBe(2);
    expect(b.body.data.expiresAt).toBeGreaterThan(0);
  });
});

describe("GroupCommit (worker/cache/group-commit.ts)", () => {
  const manual = <I, R>(apply: (items: I[]) => R[], afterApply: () => Promise<void> = async () => undefined) => {
    const scheduled: Array<() => void> = [];
    const applied: I[][] = [];
    const group = new GroupCommit<I, R>({ apply: (items) => (applied.push(items), apply(items)), afterApply, schedule: (run) => void scheduled.push(run) });
    return { group, scheduled, applied };
  };

  it("applies what was queued before its turn as one batch, answering each caller with its own result", async () => {
    const { group, scheduled, applied } = manual<number, number>((items) => items.map((n) => n * 10));
    const answers = [group.submit(1), group.submit(2), group.submit(3)];
    expect(scheduled).toHaveLength(1); // one turn asked for, however many wait
    scheduled[0]!();
    expect(applied).toEqual([[1, 2, 3]]);
    expect(await Promise.all(answers)).toEqual([10, 20, 30]);
    scheduled[0]!(); // a turn that finds nothing queued does nothing
    expect(applied).toHaveLength(1);
  });

  it("a batch that fails rejects every caller in it, and the next batch starts clean", async () => {
    let fail = true;
    const { group, scheduled } = manual<string, string>((items) => {
      if (fail) throw new Error("SQLITE_FULL");
      return items;
    });
    const first = [group.submit("a"), group.submit("b")];
    scheduled[0]!();
    for (const p of first) await expect(p).rejects.toThrow("SQLITE_FULL");
    fail = false;
    const next = group.submit("c");
    scheduled[1]!();
    expect(await next).toBe("c");
  });

  it("callers are answered only after the follow-up settles, and rejected if it fails", async () => {
    let release!: () => void;
    const { group, scheduled } = manual<number, number>((items) => items, () => new Promise<void>((r) => (release = r)));
    let answered = false;
    const p = group.submit(1).then((v) => ((answered = true), v));
    scheduled[0]!();
    await Promise.resolve();
    expect(answered).toBe(false);
    release();
    expect(await p).toBe(1);
    const { group: g2, scheduled: s2 } = manual<number, number>((items) => items, () => Promise.reject(new Error("setAlarm failed")));
    const q = g2.submit(1);
    s2[0]!();
    await expect(q).rejects.toThrow("setAlarm failed");
  });
});
