import { LruMemory, type MemoryEntry } from "./memory.js";
import type { EntryStorage } from "./storage.js";

/**
 * The cache's entries as the DO sees them: SQLite holds every row; memory holds the rows read so far, in LRU
 * order. A cold start reads none of them (the row count and byte total come from meta), so it costs the same at
 * 100 entries as at 50,000: a read fills memory from SQLite on first use (a point read), and whatever needs the
 * whole cache in LRU order (an eviction, a listing, stats, a snapshot, a sweep) first completes the index, once,
 * with one scan of keys, times and sizes. Values stay in SQLite until they are needed (MemoryEntry.value).
 */
export class EntryIndex {
  private memory: LruMemory;
  private complete: boolean;
  /** While incomplete: rows and bytes in SQLite (memory holds a subset). Complete: memory's own totals. */
  private rows: number;
  private rowBytes: number;

  constructor(
    private readonly store: EntryStorage,
    private readonly maxEntries: number,
    private readonly maxBytes: number,
    start: { entries: Array<[string, MemoryEntry]> } | { count: number; bytes: number },
  ) {
    if ("entries" in start) {
      this.complete = true;
      this.memory = new LruMemory(maxEntries, maxBytes);
      for (const [key, entry] of start.entries) this.memory.set(key, entry);
      this.rows = this.rowBytes = 0;
      const overflow = this.memory.evictOverflow();
      if (overflow.length > 0) store.deleteEntries(overflow);
    } else {
      this.complete = false;
      // A subset never evicts: the bounds apply to the whole cache, and are checked against the totals.
      this.memory = new LruMemory(Number.POSITIVE_INFINITY, Number.POSITIVE_INFINITY);
      this.rows = start.count;
      this.rowBytes = start.bytes;
      // The bounds shrank since the rows were written: evict now, as a full load would have.
      if (this.rows > maxEntries || this.rowBytes > maxBytes) this.ensureComplete();
    }
  }

  get isComplete(): boolean {
    return this.complete;
  }

  /** Rows in the cache (expired ones not yet swept included). */
  get size(): number {
    return this.complete ? this.memory.size : this.rows;
  }

  /** What the rows cost in the KV snapshot, summed. */
  get bytes(): number {
    return this.complete ? this.memory.bytes : this.rowBytes;
  }

  /** Memory holds every row from here on (one scan of the index, without values). */
  ensureComplete(): void {
    if (this.complete) return;
    const full = new LruMemory(this.maxEntries, this.maxBytes);
    for (const [key, entry] of this.store.loadIndex()) if (!this.memory.has(key)) full.set(key, entry);
    // Rows read or written since the start were used since: they are the most recent, in the order they were.
    for (const [key, entry] of this.memory.entries()) full.set(key, entry);
    const overflow = full.evictOverflow();
    if (overflow.length > 0) this.store.deleteEntries(overflow);
    this.memory = full;
    this.complete = true;
  }

  /** The entry, without changing LRU order; read from SQLite (and kept) if memory does not hold it yet. */
  peek(key: string): MemoryEntry | undefined {
    const held = this.memory.peek(key);
    if (held || this.complete) return held;
    const row = this.store.readRow(key);
    if (row) this.memory.set(key, row);
    return row;
  }

  /** Whether memory holds the key's value already (a read of it costs no SQLite access). */
  holdsValue(key: string): boolean {
    return this.memory.peek(key)?.value !== undefined;
  }

  touch(key: string, now: number): void {
    this.memory.touch(key, now);
  }

  /** Inserts as most recently used; returns the keys evicted to stay within bounds (never `key` itself). */
  set(key: string, entry: MemoryEntry): string[] {
    if (!this.complete) {
      const old = this.peek(key);
      const rows = this.rows + (old ? 0 : 1);
      const bytes = this.rowBytes - (old?.size ?? 0) + entry.size;
      if (rows <= this.maxEntries && bytes <= this.maxBytes) {
        this.memory.set(key, entry);
        this.rows = rows;
        this.rowBytes = bytes;
        return [];
      }
      this.ensureComplete(); // an eviction needs the whole LRU order
    }
    return this.memory.set(key, entry);
  }

  /** Changes an entry's size in place (completes the index), then evicts to the bounds; returns the keys evicted. */
  resize(sizes: Iterable<[string, number]>): string[] {
    this.ensureComplete();
    for (const [key, size] of sizes) this.memory.resize(key, size);
    return this.memory.evictOverflow();
  }

  delete(key: string): boolean {
    if (this.complete) return this.memory.delete(key);
    const old = this.peek(key);
    if (!old) return false;
    this.memory.delete(key);
    this.rows--;
    this.rowBytes -= old.size;
    return true;
  }

  clear(): void {
    this.memory = new LruMemory(this.maxEntries, this.maxBytes);
    this.complete = true;
  }

  /** Every entry, least recently used first (completes the index). */
  entries(): IterableIterator<[string, MemoryEntry]> {
    this.ensureComplete();
    return this.memory.entries();
  }

  keys(): IterableIterator<string> {
    this.ensureComplete();
    return this.memory.keys();
  }
}
