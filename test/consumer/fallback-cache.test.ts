import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { createCacheClient, type CacheServiceBinding } from "../../client/index.js";
import { forgetCachedSnapshot } from "../../protocol/index.js";
import { meteredKv, writeKvSnapshot } from "./kv-meter.js";

/*
 * Issue 15 across a real Worker boundary: the KV-only tftcache (FEATURE_FLAG_DO_CACHE=false) answers through its
 * CacheService binding from its per-isolate snapshot copy, and the client's own fallback (tftcache unreachable)
 * reads KV through this Worker's binding. Downloads are counted by the bytes a KV stream actually delivers.
 */
const bindings = env as unknown as { TFTCACHE_KV_ONLY: CacheServiceBinding; KV_ONLY_KV: KVNamespace };
const quiet = { log: () => {} };
const down = new Proxy({}, { get: () => async () => { throw new Error("Network connection lost."); } }) as CacheServiceBinding;

beforeEach(() => forgetCachedSnapshot());

/** The KV-only tftcache's snapshot, written now with a flush's key metadata (see kv-meter.ts). */
const writeSnapshot = (generation: number, values: Record<string, unknown>, torn = false) => writeKvSnapshot(bindings.KV_ONLY_KV, generation, Date.now(), values, torn);
/** KV_ONLY_KV, counting reads and the ones whose body was actually delivered (downloads). */
const countingKv = () => meteredKv(bindings.KV_ONLY_KV);

describe("KV fallback through a real service binding (issue 15)", () => {
  it("the client's fallback reads KV 100 times for 100 gets but downloads the snapshot once; a new generation once more", async () => {
    await writeSnapshot(11, { "quote:AAPL": { bid: 1 } });
    const { kv, counts } = countingKv();
    const client = createCacheClient(down, { ...quiet, kv });
    for (let i = 0; i < 100; i++) expect(await client.get("quote:AAPL")).toEqual({ bid: 1 });
    expect(counts).toEqual({ reads: 100, downloads: 1 });
    await writeSnapshot(12, { "quote:AAPL": { bid: 2 } });
    expect(await client.lookup("quote:AAPL")).toMatchObject({ found: true, value: { bid: 2 }, source: "kv", generation: 12, stale: false });
    expect(counts.downloads).toBe(2);
    expect(client.stats()).toMatchObject({ hits: 101, fallbacks: 101 });
  });

  it("a verified snapshot kept, then a torn one with a new generation: refused by the client's fallback and by CacheService", async () => {
    await writeSnapshot(21, { "quote:AAPL": { bid: 1 } });
    const client = createCacheClient(down, { ...quiet, kv: bindings.KV_ONLY_KV });
    const svc = bindings.TFTCACHE_KV_ONLY;
    expect(await client.get("quote:AAPL")).toEqual({ bid: 1 });
    expect(await svc.get("quote:AAPL")).toMatchObject({ found: true, value: { bid: 1 }, source: "kv", generation: 21 });

    await writeSnapshot(22, { "quote:AAPL": { bid: 999 } }, true);
    for (let i = 0; i < 3; i++) {
      expect(await client.get("quote:AAPL")).toBeUndefined();
      expect(await svc.get("quote:AAPL")).toMatchObject({ found: false, source: "none", fallbackReason: expect.stringMatching(/digest mismatch/) });
      const viaService = createCacheClient(svc, quiet);
      expect(await viaService.lookup("quote:AAPL")).toMatchObject({ found: false, source: "none" });
    }
    // Repaired by the next flush: served again.
    await writeSnapshot(23, { "quote:AAPL": { bid: 3 } });
    expect(await svc.get("quote:AAPL")).toMatchObject({ found: true, value: { bid: 3 }, generation: 23 });
    expect(await client.get("quote:AAPL")).toEqual({ bid: 3 });
  });
});
