import { readSnapshot, type SnapshotRead } from "../protocol/index.js";

export type { SnapshotRead };

/** The KV snapshot through this Worker's binding (see protocol/snapshot-read for the rules). */
export function readKvSnapshot(kv: KVNamespace): Promise<SnapshotRead> {
  return readSnapshot((key) => kv.get(key, "text"));
}
