import type { Logger } from "../log.js";
import type { EntryIndex } from "./entry-index.js";
import type { EntryStorage } from "./storage.js";

/**
 * What an operation that changes the cache's contents (prefix-purge.ts, restore.ts) needs from
 * CacheDurableObject: its memory and SQLite, and its one way of changing them.
 */
export interface MutationHost {
  /** Read it each time: the object can be replaced (memory rebuilt after a failed write) while an operation waits. */
  readonly index: EntryIndex;
  store: EntryStorage;
  /** One SQLite transaction and one new generation, which it returns (see CacheDurableObject.mutate). */
  mutate(change: () => void): number;
  /** Marks the KV snapshot owed (one coalesced flush, however many keys changed) and schedules the alarm. */
  afterMutation(): Promise<void>;
  generation(): number;
  log: Logger;
}
