/** One cached entry as the memory tier holds it. `value` is canonical JSON text (see protocol/canonical). */
export interface MemoryEntry {
  /**
   * Canonical JSON text, or undefined until first read: a cold start loads only the index (keys, times, sizes)
   * and each value is read from SQLite when it is first needed (a point read of ~25 µs).
   */
  value: string | undefined;
  expiresAt: number;
  cachedAt: number;
  lastAccessed: number;
  /** What the entry costs in the KV snapshot (snapshotEntryBytes): JSON-escaped key, value and fields. */
  size: number;
  /**
   * Set by getOrSet with staleWhileRevalidateSeconds: after this the value is stale (still served, refreshed in
   * the background) until expiresAt, the hard expiry.
   */
  freshUntil?: number;
  /**
   * Set by getOrSet with staleIfErrorSeconds: the row outlives expiresAt until then, invisible to get, listings
   * and stats, so that a failing loader can be answered with the expired value (stale-if-error). The snapshot
   * (KV's and GET /snapshot) carries it with its past expiresAt, which every reader skips as expired, so that
   * stale-if-error's KV path still finds it after later flushes.
   */
  retainUntil?: number;
}

/** When the row may be deleted: its expiry, or later when stale-if-error keeps it. */
export const keptUntil = (entry: MemoryEntry): number => Math.max(entry.expiresAt, entry.retainUntil ?? 0);

/**
 * The memory tier: a Map whose insertion order is the LRU order (oldest first), bounded by entry count and bytes.
 * It holds the whole working set, so a hit never touches storage; eviction is decided here and the caller
 * applies it to the other tiers.
 */
export class LruMemory {
  private readonly map = new Map<string, MemoryEntry>();
  private totalBytes = 0;

  constructor(
    private maxEntries: number,
    private maxBytes: number,
  ) {}

  has(key: string): boolean {
    return this.map.has(key);
  }

  get size(): number {
    return this.map.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  /** Reads without changing LRU order (for snapshots, listings, sweeps). */
  peek(key: string): MemoryEntry | undefined {
    return this.map.get(key);
  }

  /** Reads and marks most recently used. */
  touch(key: string, now: number): MemoryEntry | undefined {
    const entry = this.map.get(key);
    if (!entry) return undefined;
    this.map.delete(key);
    entry.lastAccessed = now;
    this.map.set(key, entry);
    return entry;
  }

  /** Inserts as most recently used; returns the keys evicted to stay within bounds (never `key` itself). */
  set(key: string, entry: MemoryEntry): string[] {
    this.delete(key);
    this.map.set(key, entry);
    this.totalBytes += entry.size;
    return this.evictOverflow(key);
  }

  /** Changes an entry's size in place (LRU order kept); the caller evicts afterwards if the bounds no longer hold. */
  resize(key: string, size: number): void {
    const entry = this.map.get(key);
    if (!entry) return;
    this.totalBytes += size - entry.size;
    entry.size = size;
  }

  delete(key: string): boolean {
    const old = this.map.get(key);
    if (!old) return false;
    this.map.delete(key);
    this.totalBytes -= old.size;
    return true;
  }

  clear(): void {
    this.map.clear();
    this.totalBytes = 0;
  }

  entries(): IterableIterator<[string, MemoryEntry]> {
    return this.map.entries();
  }

  keys(): IterableIterator<string> {
    return this.map.keys();
  }

  /** Evicts least recently used entries until both bounds hold; `keep` is the entry just written. */
  evictOverflow(keep?: string): string[] {
    const evicted: string[] = [];
    for (const [key, entry] of this.map) {
      if (this.map.size <= this.maxEntries && this.totalBytes <= this.maxBytes) break;
      if (key === keep) continue;
      this.map.delete(key);
      this.totalBytes -= entry.size;
      evicted.push(key);
    }
    return evicted;
  }
}
