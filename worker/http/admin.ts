import {
  MAX_LIST_LIMIT,
  MAX_SEED_ENTRIES,
  JsonValueError,
  canonicalJson,
  keyProblem,
  ttlProblem,
  valueProblem,
  type ClearScope,
  type SeedReject,
} from "../../protocol/index.js";
import type { EntryInput } from "../cache/cache-do.js";
import type { StagedEntry } from "../cache/storage.js";
import { prefixProblem } from "../cache/prefix-purge.js";
import type { CacheConfig } from "../config.js";
import { cacheStub as stub, type Env } from "../env.js";
import { readKvSnapshot, readKvSnapshotCached } from "../kv-snapshot-reader.js";
import { discardBody, readJsonBody } from "./body.js";
import { HttpError, error, fromResult, json, rawJson } from "./envelope.js";
import { Router } from "./router.js";

export interface AdminContext {
  request: Request;
  url: URL;
  env: Env;
  config: CacheConfig;
}



/** The query parameters `DELETE /entries` understands; anything else is refused rather than ignored. */
const PURGE_PARAMS = new Set(["prefix", "mode"]);

/**
 * A purge is destructive, so a parameter it would ignore or read only once is refused (400) before anything is
 * deleted: `soft=true` once ran a hard purge, and `mode=hard&mode=soft` is a contradiction, not a choice.
 */
function purgeParamsProblem(params: URLSearchParams): void {
  const seen = new Set<string>();
  for (const name of params.keys()) {
    if (seen.has(name)) throw new HttpError(400, "bad_request", `query parameter ${JSON.stringify(name)} is given more than once`);
    seen.add(name);
    if (name === "soft") throw new HttpError(400, "bad_request", "unknown query parameter \"soft\": use mode=soft for a soft purge");
    if (!PURGE_PARAMS.has(name)) throw new HttpError(400, "bad_request", `unknown query parameter ${JSON.stringify(name)}: DELETE /entries takes prefix and mode (hard or soft)`);
  }
}
function decodeKey(raw: string): string {
  let key: string;
  try {
    key = decodeURIComponent(raw);
  } catch {
    throw new HttpError(400, "bad_request", "key is not valid percent-encoding (use encodeURIComponent)");
  }
  const problem = keyProblem(key);
  if (problem) throw new HttpError(400, "bad_request", problem);
  return key;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === "object" && v !== null && !Array.isArray(v);

/** Validates one entry of a PUT or seed body and canonicalises its value; returns the reason it is unusable. */
function toEntryInput(raw: unknown, key?: string): EntryInput | { problem: string; status: number } {
  if (!isObject(raw)) return { problem: "entry must be a JSON object", status: 400 };
  const k = key ?? raw.key;
  const kp = keyProblem(k);
  if (kp) return { problem: kp, status: 400 };
  if (!("value" in raw)) return { problem: 'body must have a "value" field', status: 400 };
  const tp = ttlProblem(raw.ttlSeconds ?? undefined);
  if (tp) return { problem: tp, status: 400 };
  let value: string;
  try {
    value = canonicalJson(raw.value);
  } catch (err) {
    if (err instanceof JsonValueError) return { problem: err.message, status: 400 };
    throw err;
  }
  const vp = valueProblem(value);
  if (vp) return { problem: vp, status: 413 };
  const input: EntryInput = { key: k as string, value };
  if (typeof raw.ttlSeconds === "number") input.ttlSeconds = raw.ttlSeconds;
  return input;
}

const STAGE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const isTime = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

function stageId(raw: unknown): string {
  if (typeof raw !== "string" || !STAGE_ID.test(raw)) throw new HttpError(400, "bad_request", "stage must be 1–64 characters of A–Z, a–z, 0–9, _ and -");
  return raw;
}

/** One `[key, {value, expiresAt, lastAccessed, cachedAt, freshUntil?}]` pair of a restore, or why it is unusable. */
function toStagedEntry(raw: unknown): [string, StagedEntry] | { problem: string; key?: unknown } {
  if (!Array.isArray(raw) || raw.length !== 2 || !isObject(raw[1])) return { problem: "entry must be a [key, {value, expiresAt, lastAccessed, cachedAt}] pair" };
  const [key, e] = raw as [unknown, Record<string, unknown>];
  const kp = keyProblem(key);
  if (kp) return { problem: kp, key };
  if (!("value" in e)) return { problem: "entry has no value", key };
  for (const field of ["expiresAt", "lastAccessed", "cachedAt"] as const) if (!isTime(e[field])) return { problem: `${field} is not a time`, key };
  if (e.freshUntil !== undefined && !isTime(e.freshUntil)) return { problem: "freshUntil is not a time", key };
  let value: string;
  try {
    value = canonicalJson(e.value);
  } catch (err) {
    return { problem: (err as Error).message, key };
  }
  const vp = valueProblem(value);
  if (vp) return { problem: vp, key };
  const staged: StagedEntry = { value, expiresAt: e.expiresAt as number, lastAccessed: e.lastAccessed as number, cachedAt: e.cachedAt as number };
  if (typeof e.freshUntil === "number") staged.freshUntil = e.freshUntil;
  return [key as string, staged];
}

function parseLimit(raw: string | null): number {
  if (raw === null || raw === "") return MAX_LIST_LIMIT;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < 1 || n > MAX_LIST_LIMIT) {
    throw new HttpError(400, "bad_request", `limit must be an integer from 1 to ${MAX_LIST_LIMIT}`);
  }
  return n;
}

/** With FEATURE_FLAG_DO_CACHE=false the Worker serves reads from the KV snapshot and refuses writes. */
function doDisabled(): Response {
  return error(503, "do_disabled", "FEATURE_FLAG_DO_CACHE is false: the cache DO is bypassed and only KV snapshot reads are served");
}

/** Flag off: the entry from this isolate's verified copy of the KV snapshot (protocol/snapshot-cache), never a torn one. */
async function kvEntry(env: Env, key: string, now: number): Promise<Response> {
  const read = await readKvSnapshotCached(env.CACHE_DO_KV);
  if (!read.ok) return error(404, "not_found", `no entry for key ${JSON.stringify(key)} (KV snapshot: ${read.reason})`);
  const e = read.find(key, now);
  if (!e) return error(404, "not_found", `no entry for key ${JSON.stringify(key)}`);
  return json({ key, value: e.value, expiresAt: e.expiresAt, cachedAt: e.cachedAt, lastAccessed: e.lastAccessed, source: "kv" });
}

export const adminRouter = new Router<AdminContext>()
  .on("/", {
    DELETE: async ({ url, env, config }) => {
      if (!config.featureFlagDoCache) return doDisabled();
      const scope = url.searchParams.get("scope") ?? "all";
      if (scope !== "do" && scope !== "kv" && scope !== "all") {
        throw new HttpError(400, "bad_request", "scope must be one of do, kv, all");
      }
      return json(await stub(env).clear(scope as ClearScope));
    },
  })
  .on("/stats", {
    GET: async ({ env, config }) => (config.featureFlagDoCache ? json(await stub(env).stats()) : doDisabled()),
  })
  .on("/metadata", {
    GET: async ({ env, config }) => (config.featureFlagDoCache ? json(await stub(env).metadata()) : doDisabled()),
  })
  .on("/entries", {
    GET: async ({ url, env, config }) => {
      const prefix = url.searchParams.get("prefix") ?? "";
      const cursor = url.searchParams.get("cursor") || null;
      const limit = parseLimit(url.searchParams.get("limit"));
      if (!config.featureFlagDoCache) return doDisabled();
      return json(await stub(env).listKeys({ prefix, cursor, limit }));
    },
    // Purge by prefix: DELETE /entries?prefix=P (required; clearing everything is DELETE /api/v1/cache).
    DELETE: async ({ url, env, config }) => {
      purgeParamsProblem(url.searchParams);
      const prefix = url.searchParams.get("prefix");
      if (prefix === null || prefix === "") throw new HttpError(400, "bad_request", "prefix is required: DELETE /entries?prefix=P (to delete everything, DELETE /api/v1/cache)");
      const problem = prefixProblem(prefix);
      if (problem) throw new HttpError(400, "bad_request", problem);
      // mode=soft marks the entries stale (getOrSet serves them once more while refreshing) instead of deleting.
      const mode = url.searchParams.get("mode") ?? "hard";
      if (mode !== "hard" && mode !== "soft") throw new HttpError(400, "bad_request", "mode must be hard (the default) or soft");
      if (!config.featureFlagDoCache) return doDisabled();
      return fromResult(await stub(env).purgePrefix(prefix, mode));
    },
  })
  .on("/entries/:key", {
    GET: async ({ env, config }, params) => {
      const key = decodeKey(params.key!);
      if (!config.featureFlagDoCache) return kvEntry(env, key, Date.now());
      const data = await stub(env).getEntryJson(key);
      return data === null ? error(404, "not_found", `no entry for key ${JSON.stringify(key)}`) : rawJson(data);
    },
    PUT: async ({ request, env, config }, params) => {
      const key = decodeKey(params.key!);
      const body = await readJsonBody(request);
      if (!config.featureFlagDoCache) return doDisabled();
      const input = toEntryInput(body, key);
      if ("problem" in input) throw new HttpError(input.status, input.status === 413 ? "too_large" : "bad_request", input.problem);
      return fromResult(await stub(env).putEntry(input));
    },
    DELETE: async ({ env, config }, params) => {
      const key = decodeKey(params.key!);
      if (!config.featureFlagDoCache) return doDisabled();
      return fromResult(await stub(env).deleteEntry(key));
    },
  })
  .on("/seed", {
    POST: async ({ request, env, config }) => {
      const body = await readJsonBody(request);
      if (!config.featureFlagDoCache) return doDisabled();
      if (!isObject(body) || !Array.isArray(body.entries)) {
        throw new HttpError(400, "bad_request", 'body must be {"entries": [{"key", "value", "ttlSeconds"?}], "flush"?: bool}');
      }
      if (body.flush !== undefined && typeof body.flush !== "boolean") throw new HttpError(400, "bad_request", "flush must be a boolean");
      if (body.entries.length > MAX_SEED_ENTRIES) {
        throw new HttpError(413, "too_large", `at most ${MAX_SEED_ENTRIES} entries per seed call (got ${body.entries.length})`);
      }
      const inputs: EntryInput[] = [];
      const rejects: SeedReject[] = [];
      body.entries.forEach((raw, index) => {
        const input = toEntryInput(raw);
        if ("problem" in input) rejects.push({ index, key: isObject(raw) ? raw.key : undefined, reason: input.problem });
        else inputs.push(input);
      });
      if (rejects.length > 0) {
        throw new HttpError(400, "bad_request", `${rejects.length} of ${body.entries.length} entries are invalid; nothing was applied`, { rejects });
      }
      return fromResult(await stub(env).seed(inputs, { flush: body.flush === true }));
    },
  })
  .on("/flush", {
    POST: async ({ request, env, config }) => {
      await discardBody(request);
      if (!config.featureFlagDoCache) return doDisabled();
      return json(await stub(env).flush());
    },
  })
  .on("/restore", {
    // {stage, entries} stages a chunk; {stage, commit: {digest, count}} swaps the stage in as the whole cache.
    POST: async ({ request, env, config }) => {
      const body = await readJsonBody(request);
      if (!config.featureFlagDoCache) return doDisabled();
      if (!isObject(body)) throw new HttpError(400, "bad_request", 'body must be {"stage", "entries": [[key, entry], …]} or {"stage", "commit": {"digest", "count"}}');
      const stage = stageId(body.stage);
      if (body.commit !== undefined) {
        const c = body.commit;
        if (!isObject(c) || typeof c.digest !== "string" || !c.digest.startsWith("sha256:") || !Number.isSafeInteger(c.count) || (c.count as number) < 0) {
          throw new HttpError(400, "bad_request", 'commit must be {"digest": "sha256:…", "count": n}');
        }
        return fromResult(await stub(env).commitRestore(stage, { digest: c.digest, count: c.count as number }));
      }
      if (!Array.isArray(body.entries)) throw new HttpError(400, "bad_request", "entries must be an array of [key, entry] pairs");
      if (body.entries.length > MAX_SEED_ENTRIES) throw new HttpError(413, "too_large", `at most ${MAX_SEED_ENTRIES} entries per request (got ${body.entries.length})`);
      const staged: Array<[string, StagedEntry]> = [];
      const rejects: SeedReject[] = [];
      body.entries.forEach((raw, index) => {
        const r = toStagedEntry(raw);
        if (Array.isArray(r)) staged.push(r);
        else rejects.push({ index, key: r.key, reason: r.problem });
      });
      if (rejects.length > 0) throw new HttpError(400, "bad_request", `${rejects.length} of ${body.entries.length} entries are invalid; nothing was staged`, { rejects });
      return fromResult(await stub(env).stageRestore(stage, staged));
    },
  })
  .on("/restore/:stage", {
    DELETE: async ({ env, config }, params) => {
      const stage = stageId(params.stage);
      if (!config.featureFlagDoCache) return doDisabled();
      return json(await stub(env).abortRestore(stage));
    },
  })
  .on("/snapshot", {
    GET: async ({ env, config }) => {
      if (!config.featureFlagDoCache) {
        const read = await readKvSnapshot(env.CACHE_DO_KV);
        return read.ok ? json(read.snapshot) : error(404, "not_found", `KV snapshot unavailable: ${read.reason}`);
      }
      const snap = await stub(env).snapshot();
      return rawJson(snap.text);
    },
  });
