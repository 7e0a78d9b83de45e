import { abortAllDurableObjects, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { ENTRIES_KEY, KV_MAX_VALUE_BYTES, SNAPSHOT_HEADER_ALLOWANCE_BYTES } from "../../protocol/index.js";
import type { CacheDurableObject } from "../../worker/cache/cache-do.js";
import { readConfig } from "../../worker/config.js";
import { apiJson, cacheStub, entryPath, fakeClock, freshState, futureNoon, postJson, putJson } from "./helpers.js";
import { readKvJson } from "./kv-fixtures.js";

beforeEach(freshState);

const stats = async () => (await apiJson("/api/v1/cache/stats")).body.data;

/** Replaces the DO's KV with one whose put fails as `fail` says; returns the put attempts. */
async function kvPutFailing(fail: (n: number) => Error | null) {
  const attempts = { n: 0 };
  await runInDurableObject(cacheStub(), (i: CacheDurableObject) => {
    const real = i.sync.kv;
    i.sync.kv = {
      get: real.get.bind(real),
      list: real.list.bind(real),
      getWithMetadata: real.getWithMetadata.bind(real),
      delete: real.delete.bind(real),
      put: ((key: string, value: string, opts?: KVNamespacePutOptions) => {
        attempts.n++;
        const err = fail(attempts.n);
        return err ? Promise.reject(err) : real.put(key, value, opts);
      }) as KVNamespace["put"],
    } as KVNamespace;
  });
  return attempts;
}

describe("a KV error no retry can fix", () => {
  it("a 413 is recorded as permanent and reported, not retried in a loop; the next change tries again, after the backoff", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    await putJson(entryPath("a"), { value: 1, ttlSeconds: 86_400 }); // nothing expires (a change) meanwhile
    const attempts = await kvPutFailing(() => new Error("KV PUT failed: 413 Value length of 31457280 exceeds limit of 26214400."));
    const flushed = (await postJson("/api/v1/cache/flush", {})).body.data;
    expect(flushed).toMatchObject({ written: false, error: expect.stringMatching(/413.*permanent: not retried until the cache changes/) });
    expect(attempts.n).toBe(1);
    const s = await stats();
    expect(s.kv).toMatchObject({ writable: false, nextAttemptAt: null, failures: 1 });
    expect(s.kv.pendingSince).not.toBeNull();
    // Hours pass, alarms run (for stats persistence, sweeps): KV is not tried again.
    for (let h = 1; h <= 3; h++) {
      await setClock(t0 + h * 3_600_000);
      await runDurableObjectAlarm(cacheStub());
    }
    expect(attempts.n).toBe(1);
    // A change may make the snapshot fit: it is tried again, once, when the backoff allows.
    await setClock(t0 + 4 * 3_600_000);
    await putJson(entryPath("b"), { value: 2, ttlSeconds: 86_400 });
    const retry = (await stats()).kv;
    expect(retry.nextAttemptAt).toBe(t0 + 4 * 3_600_000 + 2_000);
    await setClock(t0 + 4 * 3_600_000 + 60_000);
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    expect(attempts.n).toBe(2);
  });

  it("a reload during backoff keeps the failure count, the retry time and when KV first fell behind", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    await putJson(entryPath("a"), { value: 1 });
    const pendingSince = (await stats()).kv.pendingSince;
    expect(pendingSince).toBe(t0);
    await kvPutFailing(() => new Error("KV is down"));
    let t = t0;
    for (let i = 0; i < 3; i++) {
      t += 600_000;
      await setClock(t);
      await runDurableObjectAlarm(cacheStub());
    }
    const before = (await stats()).kv;
    expect(before).toMatchObject({ failures: 3, pendingSince: t0, nextAttemptAt: t + 8_000 });
    await abortAllDurableObjects(); // a new instance, with the real KV again
    const after = (await stats()).kv;
    expect(after).toMatchObject({ failures: 3, pendingSince: t0, nextAttemptAt: t + 8_000, lastError: expect.stringMatching(/KV is down/) });
    // The lag verify-kv reports is measured from the first unflushed write, not from the restart.
    await setClock(t + 8_000);
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    expect((await stats()).kv).toMatchObject({ failures: 0, pendingSince: null, lastError: null });
    expect((await readKvJson(ENTRIES_KEY)).entries[0][0]).toBe("a");
  });
});

describe("CACHE_MAX_BYTES and KV's value limit", () => {
  it("a bound KV cannot hold is clamped and reported as a config problem", () => {
    const { config, problems } = readConfig({ ...env, CACHE_MAX_BYTES: String(40 * 1024 * 1024) });
    expect(config.maxBytes).toBe(KV_MAX_VALUE_BYTES - SNAPSHOT_HEADER_ALLOWANCE_BYTES);
    expect(problems.join("\n")).toMatch(/CACHE_MAX_BYTES=41943040 cannot fit in one KV value/);
    expect(readConfig({ ...env, CACHE_MAX_BYTES: "2097152" }).problems).toEqual([]);
  });
});

describe("snapshot memo", () => {
  it("builds the snapshot once per generation, not per /metadata, /snapshot and flush", async () => {
    await putJson(entryPath("a"), { value: 1 });
    const builds = () => runInDurableObject(cacheStub(), (i: CacheDurableObject) => i.snapshots.builds);
    const start = await builds();
    await apiJson("/api/v1/cache/metadata");
    await apiJson("/api/v1/cache/snapshot");
    await postJson("/api/v1/cache/flush", {});
    expect((await builds()) - start).toBe(1);
    await putJson(entryPath("b"), { value: 2 });
    await apiJson("/api/v1/cache/snapshot");
    expect((await builds()) - start).toBe(2);
  });

  it("a memoised snapshot never serves an entry past its expiry", async () => {
    const t0 = futureNoon();
    const setClock = await fakeClock(t0);
    await putJson(entryPath("short"), { value: 1, ttlSeconds: 5 });
    await putJson(entryPath("long"), { value: 2, ttlSeconds: 500 });
    expect((await apiJson("/api/v1/cache/snapshot")).body.data.entries.map((e: [string]) => e[0])).toEqual(["long", "short"]);
    await setClock(t0 + 6_000);
    expect((await apiJson("/api/v1/cache/snapshot")).body.data.entries.map((e: [string]) => e[0])).toEqual(["long"]);
  });
});
