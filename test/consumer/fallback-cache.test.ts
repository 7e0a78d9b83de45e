import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { createCacheClient, type CacheServiceBinding, type SnapshotKv } from "../../client/index.js";
import { ENTRIES_KEY, digestEntries, forgetCachedSnapshot, type SnapshotEntry } from "../../protocol/index.js";

/*
 * Issue 15 across a real Worker boundary: the KV-only tftcache (FEATURE_FLAG_DO_CACHE=false) answers through its
 * CacheService binding from its per-isolate snapshot copy, and the client's own fallback (tftcache unreachable)
 * reads KV through this Worker's binding. Downloads are counted by the bytes a KV stream actually delivers.
 */
const bindings = env as unknown as { TFTCACHE_KV_ONLY: CacheServiceBinding; KV_ONLY_KV: KVNamespace };
const quiet = { log: () => {} };
const down = new Proxy({}, { get: () => async () => { throw new Error("Network connection lost."); } }) as CacheServiceBinding;

beforeEach(() => forgetCachedSnapshot());

/** Writes the KV-only tftcache's snapshot with a flush's key metadata; `torn` changes a value after the digest. */
async function writeSnapshot(generation: number, values: Record<string, unknown>, torn = false): Promise<void> {
  const now = Date.now();
  const entries: Array<[string, SnapshotEntry]> = Object.entries(values).map(([key, value]) => [key, { value, expiresAt: now + 3_600_000, lastAccessed: now, cachedAt: now }]);
  const digest = await digestEntries(entries);
  if (torn) entries[0]![1].value = { torn: true };
  await bindings.KV_ONLY_KV.put(ENTRIES_KEY, JSON.stringify({ format: 1, generation, writtenAt: now, digest, entries }), { metadata: { format: 1, generation, writtenAt: now, digest } });
}

/** KV_ONLY_KV, counting reads and the ones whose body was actually delivered (downloads). */
function countingKv() {
  const counts = { reads: 0, downloads: 0 };
  const kv: SnapshotKv = {
    get: (key, type) => (counts.reads++, counts.downloads++, bindings.KV_ONLY_KV.get(key, type)),
    getWithMetadata: async (key) => {
      counts.reads++;
      const r = await bindings.KV_ONLY_KV.getWithMetadata(key, "stream");
      if (!r.value) return r;
      let delivered = false;
      const meter = new TransformStream({
        transform(chunk, out) {
          if (!delivered) (delivered = true), counts.downloads++;
          out.enqueue(chunk);
        },
      });
      return { value: r.value.pipeThrough(meter), metadata: r.metadata };
    },
  };
  return { kv, counts };
}

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
