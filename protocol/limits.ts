/** Limits both sides enforce, so the CLI can reject bad input before it costs a request (design.md §3, §6). */
export const MAX_KEY_BYTES = 512;
export const MAX_VALUE_BYTES = 1024 * 1024;
export const MAX_BODY_BYTES = 10 * 1024 * 1024;
export const MAX_SEED_ENTRIES = 10_000;
export const MAX_LIST_LIMIT = 1000;
/** The most keys one CacheService.getMany answers; the client splits larger batches into calls of this size. */
export const MAX_GET_MANY_KEYS = 1000;
/** Admin keys shorter than this fall to guessing even when throttled: the Worker logs it, `doctor` warns. */
export const MIN_ADMIN_KEY_LENGTH = 16;
/**
 * How deeply arrays and objects may nest in a value. Quotes and order books need a handful of levels; 100 leaves
 * ample room while keeping every recursive walk of a value (canonical JSON, the digest) far from the stack limit.
 */
export const MAX_VALUE_DEPTH = 100;
/** Ten years: long enough for "practically forever", short enough that expiresAt stays a safe integer. */
export const MAX_TTL_SECONDS = 10 * 365 * 24 * 3600;

/** KV's value limit: `do_cache_entries` must never be larger. */
export const KV_MAX_VALUE_BYTES = 25 * 1024 * 1024;
/**
 * Room kept under KV_MAX_VALUE_BYTES for the snapshot's header (format, generation, writtenAt, digest): the
 * largest CACHE_MAX_BYTES accepted is KV_MAX_VALUE_BYTES minus this.
 */
export const SNAPSHOT_HEADER_ALLOWANCE_BYTES = 4096;
/**
 * What one entry costs in `do_cache_entries` besides its JSON-escaped key and its value: brackets, field names and
 * separators (55 bytes) and three epoch-ms times of 13 digits (every time until the year 2286); a stale-while-
 * revalidate entry adds `,"freshUntil":` and a fourth time.
 */
export const SNAPSHOT_ENTRY_OVERHEAD_BYTES = 55 + 3 * 13;
export const SNAPSHOT_FRESH_UNTIL_BYTES = 14 + 13;

const encoder = new TextEncoder();

export function utf8Length(text: string): number {
  return encoder.encode(text).byteLength;
}

/**
 * What an entry costs in the KV snapshot: its key as JSON (escapes included), its canonical value text and the
 * per-entry fields. CACHE_MAX_BYTES bounds the sum, so the snapshot fits in KV whatever the entry count.
 */
export function snapshotEntryBytes(key: string, canonicalValue: string, hasFreshUntil = false): number {
  return utf8Length(JSON.stringify(key)) + utf8Length(canonicalValue) + SNAPSHOT_ENTRY_OVERHEAD_BYTES + (hasFreshUntil ? SNAPSHOT_FRESH_UNTIL_BYTES : 0);
}

/** Returns why a key is unusable, or null. */
export function keyProblem(key: unknown): string | null {
  if (typeof key !== "string") return "key must be a string";
  if (key.length === 0) return "key must not be empty";
  if (!key.isWellFormed()) return "key contains an unpaired UTF-16 surrogate";
  if (utf8Length(key) > MAX_KEY_BYTES) return `key is longer than ${MAX_KEY_BYTES} bytes`;
  // URL parsers collapse these path segments, so such a key could be written but never read back by path.
  if (key === "." || key === "..") return "key must not be '.' or '..'";
  return null;
}

/** Returns why a ttlSeconds is unusable, or null. Undefined means "use the default". */
export function ttlProblem(ttl: unknown): string | null {
  if (ttl === undefined) return null;
  if (typeof ttl !== "number" || !Number.isFinite(ttl)) return "ttlSeconds must be a number";
  if (ttl <= 0) return "ttlSeconds must be greater than 0";
  if (ttl > MAX_TTL_SECONDS) return `ttlSeconds must be at most ${MAX_TTL_SECONDS}`;
  return null;
}

/** Returns why a canonical value text is unusable, or null. */
export function valueProblem(canonicalValue: string): string | null {
  if (utf8Length(canonicalValue) > MAX_VALUE_BYTES) return `value is larger than ${MAX_VALUE_BYTES} bytes`;
  return null;
}
