import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { createCacheClient, type CacheServiceBinding } from "../../client/index.js";
import { forgetCachedSnapshot } from "../../protocol/index.js";
import { meteredKv, writeKvSnapshot } from "./kv-meter.js";

/*
 * The KV fallback's verified copy is kept per source (protocol/snapshot-cache.ts): two namespaces read in one
 * isolate never answer for each other, whether read through their bindings or through get-only objects.
 * KV_ONLY_KV (the KV-only tftcache's, which never writes it) and SPARE_KV (no Worker's) are two real namespaces.
 */
const bindings = env as unknown as { KV_ONLY_KV: KVNamespace; SPARE_KV: KVNamespace };
const quiet = { log: () => {} };
const down = new Proxy({}, { get: () => async () => { throw new Error("Network connection lost."); } }) as CacheServiceBinding;

beforeEach(() => forgetCachedSnapshot());

/** A snapshot with a flush's key metadata; both namespaces get the same generation and writtenAt. */
const writeSnapshot = writeKvSnapshot;
/** A namespace's binding (or a get-only object over it), counting the reads whose body was delivered. */
const counting = (ns: KVNamespace, getOnly: boolean) => meteredKv(ns, { getOnly });

describe("two KV namespaces in one isolate (issue 15 review)", () => {
  it("read alternately through their bindings: each answers its own data, and each is downloaded once", async () => {
    const now = Date.now();
    await writeSnapshot(bindings.KV_ONLY_KV, 7, now, { "quote:AAPL": { from: "A" } });
    await writeSnapshot(bindings.SPARE_KV, 7, now, { "quote:AAPL": { from: "B" }, "only:B": 1 });
    const a = counting(bindings.KV_ONLY_KV, false);
    const b = counting(bindings.SPARE_KV, false);
    const viaA = createCacheClient(down, { ...quiet, kv: a.kv });
    const viaB = createCacheClient(down, { ...quiet, kv: b.kv });
    for (let i = 0; i < 50; i++) {
      expect(await viaA.get("quote:AAPL")).toEqual({ from: "A" });
      expect(await viaB.get("quote:AAPL")).toEqual({ from: "B" });
      expect(await viaA.get("only:B")).toBeUndefined();
    }
    expect([a.counts.downloads, b.counts.downloads]).toEqual([1, 1]);
    // The bindings themselves (the usual `kv: env.CACHE_DO_KV`): never each other's copy either.
    for (let i = 0; i < 3; i++) {
      expect(await createCacheClient(down, { ...quiet, kv: bindings.SPARE_KV }).get("quote:AAPL")).toEqual({ from: "B" });
      expect(await createCacheClient(undefined, { ...quiet, kv: bindings.KV_ONLY_KV }).getOrSet("quote:AAPL", () => "loader")).toEqual({ from: "A" });
    }
  });

  it("read alternately through get-only objects (reused for 60 s without asking KV): never each other's copy", async () => {
    const now = Date.now();
    await writeSnapshot(bindings.KV_ONLY_KV, 3, now, { "quote:MSFT": { from: "A" } });
    await writeSnapshot(bindings.SPARE_KV, 4, now, { "quote:MSFT": { from: "B" } });
    const a = counting(bindings.KV_ONLY_KV, true);
    const b = counting(bindings.SPARE_KV, true);
    const viaA = createCacheClient(down, { ...quiet, kv: a.kv });
    const viaB = createCacheClient(down, { ...quiet, kv: b.kv });
    for (let i = 0; i < 20; i++) {
      expect(await viaA.lookup("quote:MSFT")).toMatchObject({ found: true, value: { from: "A" }, generation: 3 });
      expect(await viaB.lookup("quote:MSFT")).toMatchObject({ found: true, value: { from: "B" }, generation: 4 });
    }
    expect([a.counts.downloads, b.counts.downloads]).toEqual([1, 1]);
    // A get-only object made per request is a new source each time: read afresh, never another's copy.
    for (let i = 0; i < 3; i++) expect(await createCacheClient(down, { ...quiet, kv: counting(bindings.SPARE_KV, true).kv }).get("quote:MSFT")).toEqual({ from: "B" });
  });
});
