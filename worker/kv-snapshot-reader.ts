import { readCachedSnapshot, readSnapshot, type CachedSnapshotRead, type SnapshotRead } from "../protocol/index.js";
import { clock } from "./clock.js";

export type { CachedSnapshotRead, SnapshotRead };

/** The KV snapshot through this Worker's binding (see protocol/snapshot-read for the rules). */
export function readKvSnapshot(kv: KVNamespace): Promise<SnapshotRead> {
  return readSnapshot((key) => kv.get(key, "text"));
}

/**
 * The KV snapshot for a fallback read (CacheService, the flag-off admin GET): this isolate's verified copy while
 * KV's key metadata says it is unchanged (protocol/snapshot-cache), so a read costs no download or digest.
 */
export function readKvSnapshotCached(kv: KVNamespace): Promise<CachedSnapshotRead> {
  return readCachedSnapshot(kv, clock.now());
}
