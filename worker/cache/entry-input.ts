import { jitteredTtl, keyProblem, snapshotEntryBytes, ttlJitterProblem, ttlProblem, valueProblem } from "../../protocol/index.js";
import { fail, type Result } from "../result.js";
import type { MemoryEntry } from "./memory.js";

/** One write, as a PUT, a seed entry or a getOrSet load hands it to the DO: the value already canonical JSON. */
export interface EntryInput {
  key: string;
  value: string;
  ttlSeconds?: number;
  /** Keep serving the value this long after ttlSeconds while one refresh runs (getOrSet). */
  staleWhileRevalidateSeconds?: number;
  /** Keep the row this long past its expiry, for getOrSet's stale-if-error (invisible to every other read). */
  staleIfErrorSeconds?: number;
  /** Shorten the TTL by a random part of it, up to this fraction (GetOrSetOptions.ttlJitter). */
  ttlJitter?: number;
}

/**
 * Why the DO refuses a write, or null. RPC callers reach the DO without the admin API's checks, so every rule is
 * checked here again: the key, the TTLs, canonical JSON text within the value limit, and what the entry would
 * cost in the KV snapshot against CACHE_MAX_BYTES.
 */
export function entryProblem(input: EntryInput, maxBytes: number): Result<never> | null {
  if (typeof input !== "object" || input === null) return fail(400, "bad_request", "entry must be an object");
  const k = keyProblem(input.key);
  if (k) return fail(400, "bad_request", k);
  const t = ttlProblem(input.ttlSeconds) ?? ttlProblem(input.staleWhileRevalidateSeconds) ?? ttlProblem(input.staleIfErrorSeconds) ?? ttlJitterProblem(input.ttlJitter);
  if (t) return fail(400, "bad_request", t);
  if (typeof input.value !== "string") return fail(400, "bad_request", "value must be canonical JSON text");
  const v = valueProblem(input.value);
  if (v) return fail(413, "too_large", v);
  const size = snapshotEntryBytes(input.key, input.value, (input.staleWhileRevalidateSeconds ?? 0) > 0);
  if (size > maxBytes) return fail(413, "too_large", `entry costs ${size} bytes in the KV snapshot; CACHE_MAX_BYTES is ${maxBytes}`);
  return null;
}

/** The entry a write stores at `now`: its expiry from the TTL (jittered), its stale windows and its snapshot size. */
export function newEntry(input: EntryInput, now: number, defaultTtlSeconds: number, random: () => number): MemoryEntry {
  const ttl = jitteredTtl(input.ttlSeconds ?? defaultTtlSeconds, input.ttlJitter, random);
  const swr = input.staleWhileRevalidateSeconds ?? 0;
  const sie = input.staleIfErrorSeconds ?? 0;
  const freshUntil = now + Math.round(ttl * 1000);
  const expiresAt = freshUntil + Math.round(swr * 1000);
  const entry: MemoryEntry = {
    value: input.value,
    expiresAt,
    cachedAt: now,
    lastAccessed: now,
    size: snapshotEntryBytes(input.key, input.value, swr > 0),
  };
  if (swr > 0) entry.freshUntil = freshUntil;
  if (sie > 0) entry.retainUntil = expiresAt + Math.round(sie * 1000);
  return entry;
}
