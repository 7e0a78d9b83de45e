import type { SnapshotKv } from "../../client/index.js";
import { ENTRIES_KEY, digestEntries, type SnapshotEntry } from "../../protocol/index.js";

/**
 * A KV namespace as the client's `kv` option, counting reads and downloads: a download is a read whose body was
 * actually delivered (a metadata probe cancels the body unread). `getOnly` leaves out getWithMetadata.
 */
export function meteredKv(ns: KVNamespace, opts: { getOnly?: boolean } = {}) {
  const counts = { reads: 0, downloads: 0 };
  const get = (key: string, type: "text") => (counts.reads++, counts.downloads++, ns.get(key, type));
  if (opts.getOnly) return { kv: { get } as SnapshotKv, counts };
  const kv: SnapshotKv = {
    get,
    getWithMetadata: async (key) => {
      counts.reads++;
      const r = await ns.getWithMetadata(key, "stream");
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

/** Writes `do_cache_entries` with a flush's key metadata; `torn` changes a value after the digest is taken. */
export async function writeKvSnapshot(ns: KVNamespace, generation: number, writtenAt: number, values: Record<string, unknown>, torn = false): Promise<void> {
  const entries: Array<[string, SnapshotEntry]> = Object.entries(values).map(([key, value]) => [key, { value, expiresAt: writtenAt + 3_600_000, lastAccessed: writtenAt, cachedAt: writtenAt }]);
  const digest = await digestEntries(entries);
  if (torn) entries[0]![1].value = { torn: true };
  await ns.put(ENTRIES_KEY, JSON.stringify({ format: 1, generation, writtenAt, digest, entries }), { metadata: { format: 1, generation, writtenAt, digest } });
}
