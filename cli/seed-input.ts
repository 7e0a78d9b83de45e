import { JsonValueError, canonicalJson, keyProblem, parseEntriesSnapshot, snapshotEntryBytes, ttlProblem, valueProblem } from "../protocol/index.js";

export interface SeedEntry {
  key: string;
  value: unknown;
  ttlSeconds?: number;
  /** The value as canonical JSON (computed once while validating): what is sent, and what the entry costs. */
  canonical: string;
}

/** What an entry will cost against the Worker's CACHE_MAX_BYTES (protocol/limits.ts snapshotEntryBytes). */
export const entryCost = (e: SeedEntry): number => snapshotEntryBytes(e.key, e.canonical);

/** The entry as one element of a seed request, JSON text built from the canonical value (no second stringify). */
export const entryJson = (e: SeedEntry): string => `{"key":${JSON.stringify(e.key)},"value":${e.canonical}${e.ttlSeconds === undefined ? "" : `,"ttlSeconds":${JSON.stringify(e.ttlSeconds)}`}}`;

export interface SeedReject {
  /** 1-based line for NDJSON, else the 0-based index in the array or snapshot. */
  where: string;
  key?: string;
  reason: string;
}

export interface ParsedSeed {
  format: "json-array" | "ndjson" | "snapshot";
  entries: SeedEntry[];
  rejects: SeedReject[];
  /** Snapshot entries already expired: skipped, not rejected. */
  expired: number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Same rules the Worker applies (protocol/limits), so a reject here would have been a 400 there. */
/** An entry whose `expiresAt` (an NDJSON line of `tftcache export --ndjson`) has passed: skipped, not rejected. */
const EXPIRED = Symbol("expired");

function validate(raw: unknown, where: string, defaultTtl: number | undefined, now: number): SeedEntry | SeedReject | typeof EXPIRED {
  if (!isObject(raw)) return { where, reason: 'expected an object {"key", "value", "ttlSeconds"?}' };
  const keyIssue = keyProblem(raw.key);
  const key = typeof raw.key === "string" ? raw.key : undefined;
  const withKey = key === undefined ? {} : { key };
  if (keyIssue) return { where, ...withKey, reason: keyIssue };
  if (!("value" in raw)) return { where, ...withKey, reason: 'missing "value"' };
  // An absolute expiry (what `export --ndjson` writes) becomes the remaining TTL, unless a ttlSeconds is given.
  let fromExpiry: number | undefined;
  if (raw.ttlSeconds === undefined && raw.expiresAt !== undefined) {
    if (typeof raw.expiresAt !== "number" || !Number.isFinite(raw.expiresAt)) return { where, ...withKey, reason: "expiresAt must be a time in epoch milliseconds" };
    if (raw.expiresAt <= now) return EXPIRED;
    fromExpiry = (raw.expiresAt - now) / 1000;
  }
  const ttl = raw.ttlSeconds ?? fromExpiry ?? defaultTtl;
  const ttlIssue = ttlProblem(ttl);
  if (ttlIssue) return { where, ...withKey, reason: ttlIssue };
  let canonical: string;
  try {
    canonical = canonicalJson(raw.value);
  } catch (err) {
    // Nested deeper than MAX_VALUE_DEPTH (JsonValueError names the limit); a RangeError is a stack that ran out
    // all the same. Either way it is this entry's problem, not the whole run's.
    if (err instanceof JsonValueError || err instanceof RangeError) return { where, ...withKey, reason: err instanceof RangeError ? "value is nested too deeply to process" : err.message };
    throw err;
  }
  const valueIssue = valueProblem(canonical);
  if (valueIssue) return { where, ...withKey, reason: valueIssue };
  return { key: key!, value: raw.value, ...(typeof ttl === "number" ? { ttlSeconds: ttl } : {}), canonical };
}

function collect(items: Array<[unknown, string]>, defaultTtl: number | undefined, now: number): { entries: SeedEntry[]; rejects: SeedReject[]; expired: number } {
  const entries: SeedEntry[] = [];
  const rejects: SeedReject[] = [];
  let expired = 0;
  for (const [raw, where] of items) {
    const result = validate(raw, where, defaultTtl, now);
    if (result === EXPIRED) expired++;
    else if ("reason" in result) rejects.push(result);
    else entries.push(result);
  }
  return { entries, rejects, expired };
}

/**
 * Accepts a JSON array of entries, NDJSON (one entry per line), or a `do_cache_entries` snapshot (remaining
 * TTLs are computed from `expiresAt`; expired entries are skipped). Bad entries are rejected one by one with
 * where they were, so the rest can still be seeded.
 */
export function parseSeedInput(text: string, opts: { defaultTtl?: number; now?: number } = {}): ParsedSeed {
  const now = opts.now ?? Date.now();
  const trimmed = text.trim();
  if (trimmed === "") throw new SeedFormatError("input is empty");
  let whole: unknown;
  let wholeError: Error | null = null;
  try {
    whole = JSON.parse(trimmed);
  } catch (err) {
    wholeError = err as Error;
  }
  if (wholeError === null) {
    if (Array.isArray(whole)) return { format: "json-array", ...collect(whole.map((raw, i) => [raw, `entry ${i}`]), opts.defaultTtl, now) };
    if (isObject(whole) && "format" in whole && Array.isArray(whole.entries)) {
      const parsed = parseEntriesSnapshot(trimmed);
      if (!parsed.ok) throw new SeedFormatError(`looks like a snapshot but is not one: ${parsed.error}`);
      let expired = 0;
      const items: Array<[unknown, string]> = [];
      parsed.value.entries.forEach(([key, e], i) => {
        if (e.expiresAt <= now) expired++;
        else items.push([{ key, value: e.value, ttlSeconds: (e.expiresAt - now) / 1000 }, `entry ${i}`]);
      });
      const collected = collect(items, undefined, now);
      return { format: "snapshot", entries: collected.entries, rejects: collected.rejects, expired: expired + collected.expired };
    }
    if (isObject(whole) && Array.isArray(whole.entries)) {
      return { format: "json-array", ...collect(whole.entries.map((raw, i) => [raw, `entry ${i}`]), opts.defaultTtl, now) };
    }
    if (isObject(whole)) return { format: "ndjson", ...collect([[whole, "line 1"]], opts.defaultTtl, now) };
    throw new SeedFormatError("expected a JSON array of entries, NDJSON, or a do_cache_entries snapshot");
  }
  if (trimmed.startsWith("[")) throw new SeedFormatError(`input is not valid JSON: ${wholeError.message}`);
  const items: Array<[unknown, string]> = [];
  const rejects: SeedReject[] = [];
  text.split(/\r?\n/).forEach((line, i) => {
    if (line.trim() === "") return;
    try {
      items.push([JSON.parse(line), `line ${i + 1}`]);
    } catch (err) {
      rejects.push({ where: `line ${i + 1}`, reason: `not valid JSON (${(err as Error).message})` });
    }
  });
  const collected = collect(items, opts.defaultTtl, now);
  return { format: "ndjson", entries: collected.entries, rejects: [...rejects, ...collected.rejects].sort(byPosition), expired: collected.expired };
}

const position = (r: SeedReject) => Number(r.where.replace(/\D+/g, ""));
const byPosition = (a: SeedReject, b: SeedReject) => position(a) - position(b);

export class SeedFormatError extends Error {}
