import { KV_MAX_VALUE_BYTES, SNAPSHOT_HEADER_ALLOWANCE_BYTES, type SyncMode } from "../protocol/index.js";
import type { Env } from "./env.js";
import type { LogLevel } from "./log.js";

export interface CacheConfig {
  featureFlagDoCache: boolean;
  maxEntries: number;
  maxBytes: number;
  defaultTtlSeconds: number;
  flushIntervalSeconds: number;
  dailyWriteBudget: number;
  syncMode: SyncMode;
  logLevel: LogLevel;
}

export const DEFAULTS: CacheConfig = {
  featureFlagDoCache: true,
  maxEntries: 1000,
  // What the entries may cost in the KV snapshot (snapshotEntryBytes): 20 MiB stays well below KV's 25 MiB.
  maxBytes: 20 * 1024 * 1024,
  defaultTtlSeconds: 3600,
  flushIntervalSeconds: 10,
  dailyWriteBudget: 1000,
  syncMode: "coalesced",
  logLevel: "info",
};

/** The largest CACHE_MAX_BYTES whose snapshot still fits in one KV value. */
export const MAX_CACHE_BYTES = KV_MAX_VALUE_BYTES - SNAPSHOT_HEADER_ALLOWANCE_BYTES;

/** CACHE_MAX_BYTES bounds what the entries cost in the snapshot; a bound KV cannot hold is clamped, and said. */
function snapshotBound(bytes: number, problems: string[]): number {
  if (bytes <= MAX_CACHE_BYTES) return bytes;
  problems.push(`CACHE_MAX_BYTES=${bytes} cannot fit in one KV value (${KV_MAX_VALUE_BYTES} bytes with the snapshot's header); using ${MAX_CACHE_BYTES}`);
  return MAX_CACHE_BYTES;
}

/**
 * A typo in a var must not silently turn a bound off, so unparsable values fall back to the default and are
 * reported (the DO logs them at start-up).
 */
const parsed = new WeakMap<Env, { config: CacheConfig; problems: string[] }>();

/** readConfig, once per env object: vars do not change during an isolate's life, and the front reads them per request. */
export function configOf(env: Env): { config: CacheConfig; problems: string[] } {
  let found = parsed.get(env);
  if (!found) {
    found = readConfig(env);
    parsed.set(env, found);
  }
  return found;
}

export function readConfig(env: Env): { config: CacheConfig; problems: string[] } {
  const problems: string[] = [];
  const num = (name: keyof Env, fallback: number, min: number): number => {
    const raw = env[name];
    if (raw === undefined || raw === "") return fallback;
    const n = typeof raw === "number" ? raw : Number(raw);
    if (!Number.isFinite(n) || n < min) {
      problems.push(`${name}=${JSON.stringify(raw)} is not a number >= ${min}; using ${fallback}`);
      return fallback;
    }
    return n;
  };
  const flagRaw = env.FEATURE_FLAG_DO_CACHE;
  const featureFlagDoCache = flagRaw === undefined || flagRaw === "" ? true : String(flagRaw).toLowerCase() !== "false";
  let syncMode: SyncMode = DEFAULTS.syncMode;
  if (env.KV_SYNC_MODE === "write-through" || env.KV_SYNC_MODE === "coalesced") syncMode = env.KV_SYNC_MODE;
  else if (env.KV_SYNC_MODE) problems.push(`KV_SYNC_MODE=${JSON.stringify(env.KV_SYNC_MODE)} is not coalesced|write-through`);
  const level = env.LOG_LEVEL?.toLowerCase();
  const logLevel: LogLevel = level === "debug" || level === "info" || level === "warn" || level === "error" ? level : DEFAULTS.logLevel;
  return {
    config: {
      featureFlagDoCache,
      maxEntries: Math.floor(num("CACHE_MAX_ENTRIES", DEFAULTS.maxEntries, 1)),
      maxBytes: snapshotBound(Math.floor(num("CACHE_MAX_BYTES", DEFAULTS.maxBytes, 1024)), problems),
      defaultTtlSeconds: num("CACHE_DEFAULT_TTL_SECONDS", DEFAULTS.defaultTtlSeconds, 0.001),
      flushIntervalSeconds: num("KV_FLUSH_INTERVAL_SECONDS", DEFAULTS.flushIntervalSeconds, 1),
      dailyWriteBudget: Math.floor(num("KV_DAILY_WRITE_BUDGET", DEFAULTS.dailyWriteBudget, 0)),
      syncMode,
      logLevel,
    },
    problems,
  };
}
