import { abortAllDurableObjects, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { CacheDurableObject } from "../../worker/cache/cache-do.js";
import { GroupCommit } from "../../worker/cache/group-commit.js";
import { apiJson, cacheStub, entryPath, freshState, putJson } from "./helpers.js";

beforeEach(freshState);

/** Counts the DO's storage transactions from now on (each one is a commit the runtime pays for). */
async function countTransactions(): Promise<() => Promise<number>> {
  await runInDurableObject(cacheStub(), (instance: CacheDurableObject) => {
    const store = instance.store as unknown as { transaction: <T>(fn: () => T) => T; commits?: number };
    const original = store.transaction.bind(store);
    store.commits = 0;
    store.transaction = (fn) => {
      store.commits!++;
      return original(fn);
    };
  });
  return () => runInDurableObject(cacheStub(), (instance: CacheDurableObject) => (instance.store as unknown as { commits: number }).commits);
}

describe("group commit: PUTs that arrive together share one storage transaction", () => {
  it("PUTs made in one turn are one transaction, each answered with its own generation, all durable", async () => {
    await apiJson("/api/v1/cache/stats"); // the instance exists before its transactions are counted
    const commits = await countTransactions();
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
