import {
  API_PREFIX,
  type CacheStats,
  type ClearResult,
  type ClearScope,
  type EntriesSnapshot,
  type EntryView,
  type FlushResult,
  type KeyListing,
  type Metadata,
  type PurgeResult,
  type RestoreResult,
  type RestoreStaged,
  type SeedResult,
} from "../../protocol/index.js";
import { CliError } from "../errors.js";
import { endpoint, parseRetryAfter, send, type HttpOptions, type HttpResponse, type SendInit } from "./send.js";

/** `json` is serialised here; `body` is JSON text the caller already built (large seeds and restores). */
type Call = Omit<SendInit, "headers" | "body"> & { json?: unknown; body?: string; query?: Record<string, string | number | undefined | null> };

/** What PUT /entries/:key answers. */
export interface PutResult {
  key: string;
  generation: number;
  expiresAt: number;
  evicted: number;
}

/** Failure reported by the admin API in its error envelope. */
export class AdminApiError extends CliError {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details?: unknown,
    hint?: string,
  ) {
    super(message, hint === undefined ? {} : { hint });
  }
}

function parseEnvelope(res: HttpResponse): { success: boolean; data?: unknown; error?: { code: string; message: string; details?: unknown } } {
  const contentType = String(res.headers["content-type"] ?? "unknown");
  if (String(res.headers["cf-mitigated"] ?? "").toLowerCase().includes("challenge")) {
    throw new CliError(`${new URL(res.url).origin} answered with a Cloudflare challenge page (HTTP ${res.status}, cf-mitigated: challenge), not the tftcache Worker`, {
      hint: "a WAF, Bot Fight Mode or \"Under Attack\" rule on the Worker's zone challenges the CLI, which cannot solve it: add a WAF skip rule for /api/v1/cache/* (or /health), or use the workers.dev URL",
    });
  }
  try {
    const body = JSON.parse(res.text) as unknown;
    if (typeof body === "object" && body !== null && "success" in body) return body as ReturnType<typeof parseEnvelope>;
  } catch {
    // fall through: not JSON
  }
  const origin = new URL(res.url).origin;
  throw new CliError(`unexpected response from ${origin} (HTTP ${res.status}, ${contentType.split(";")[0]}): not a tftcache JSON envelope`, {
    hint: "is --url / TFTCACHE_URL pointing at the tftcache Worker (not a proxy, login page or another service)?",
  });
}

/** The Worker's admin API (design.md §3), one method per route. */
export class AdminClient {
  constructor(
    private readonly baseUrl: string,
    private readonly apiKey: string,
    private readonly http: HttpOptions,
  ) {}

  private url(path: string, query: Call["query"] = {}): URL {
    const url = endpoint(this.baseUrl, path);
    for (const [k, v] of Object.entries(query)) if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, String(v));
    return url;
  }

  async call<T>(path: string, init: Call): Promise<T> {
    const headers: Record<string, string> = { "x-api-key": this.apiKey, accept: "application/json" };
    let body: string | undefined = init.body;
    if (init.json !== undefined) body = JSON.stringify(init.json);
    if (body !== undefined) headers["content-type"] = "application/json";
    const res = await send(
      this.url(path, init.query),
      { method: init.method, headers, ...(body === undefined ? {} : { body }), ...(init.idempotent === undefined ? {} : { idempotent: init.idempotent }), ...(init.onDownload ? { onDownload: init.onDownload } : {}) },
      this.http,
    );
    const envelope = parseEnvelope(res);
    if (envelope.success) return envelope.data as T;
    const code = envelope.error?.code ?? "unknown";
    const message = envelope.error?.message ?? `HTTP ${res.status}`;
    if (res.status === 401) {
      throw new AdminApiError(401, code, `the Worker refused the API key (401 ${code})`, undefined, "check --api-key or TFTCACHE_API_KEY against the Worker's ADMIN_API_KEY secret");
    }
    if (res.status === 403) throw new AdminApiError(403, code, `forbidden (403): ${message}`, undefined, "something in front of the Worker (Cloudflare Access, a WAF rule) refused the request");
    if (code === "admin_disabled") throw new AdminApiError(res.status, code, message, undefined, "set it with `wrangler secret put ADMIN_API_KEY` (or in .dev.vars locally)");
    if (res.status === 429) {
      // send() has already waited out Retry-After (up to its retries); this is what is left to say.
      const retryAfterMs = parseRetryAfter(res.headers["retry-after"]);
      const after = retryAfterMs === null ? "" : `; retry after ${Math.max(1, Math.ceil(retryAfterMs / 1000))} s`;
      if (/authenticat/i.test(message)) {
        throw new AdminApiError(429, code, `too many failed authentication attempts${after} (429 ${code})`, undefined, "the Worker slows down wrong keys from this address: check --api-key / TFTCACHE_API_KEY against its ADMIN_API_KEY, then wait before trying again");
      }
      throw new AdminApiError(429, code, `rate limited by the Worker (429): ${message}${after}`, undefined, "wait and retry");
    }
    throw new AdminApiError(res.status, code, `${message} (HTTP ${res.status} ${code})`, envelope.error?.details);
  }

  health() {
    return this.call<{ status: string; version: string }>("/health", { method: "GET" });
  }
  stats() {
    return this.call<CacheStats>(`${API_PREFIX}/stats`, { method: "GET" });
  }
  metadata() {
    return this.call<Metadata>(`${API_PREFIX}/metadata`, { method: "GET" });
  }
  list(opts: { prefix?: string; cursor?: string | null; limit?: number }) {
    return this.call<KeyListing>(`${API_PREFIX}/entries`, { method: "GET", query: { prefix: opts.prefix, cursor: opts.cursor, limit: opts.limit } });
  }
  /** Null when the key is absent or expired. */
  async get(key: string): Promise<EntryView | null> {
    try {
      return await this.call<EntryView>(`${API_PREFIX}/entries/${encodeURIComponent(key)}`, { method: "GET" });
    } catch (err) {
      if (err instanceof AdminApiError && err.status === 404 && err.code === "not_found") return null;
      throw err;
    }
  }
  seed(entries: Array<{ key: string; value: unknown; ttlSeconds?: number }>, flush: boolean) {
    return this.call<SeedResult>(`${API_PREFIX}/seed`, { method: "POST", json: { entries, flush } });
  }
  /** A seed whose entries are already JSON text (one element each), so a batch is serialised once and its size known. */
  seedJson(entriesJson: readonly string[], flush: boolean) {
    return this.call<SeedResult>(`${API_PREFIX}/seed`, { method: "POST", body: `{"entries":[${entriesJson.join(",")}],"flush":${flush}}` });
  }
  put(key: string, value: unknown, ttlSeconds?: number) {
    return this.call<PutResult>(`${API_PREFIX}/entries/${encodeURIComponent(key)}`, { method: "PUT", json: ttlSeconds === undefined ? { value } : { value, ttlSeconds } });
  }
  /** Null when the key was absent (or already expired). */
  async del(key: string): Promise<{ key: string; generation: number } | null> {
    try {
      return await this.call<{ key: string; generation: number }>(`${API_PREFIX}/entries/${encodeURIComponent(key)}`, { method: "DELETE" });
    } catch (err) {
      if (err instanceof AdminApiError && err.status === 404 && err.code === "not_found") return null;
      throw err;
    }
  }
  /** DELETE /entries?prefix=P: every entry whose key starts with the prefix (soft: marked stale, not deleted). */
  purge(prefix: string, opts: { soft?: boolean } = {}) {
    return this.call<PurgeResult>(`${API_PREFIX}/entries`, { method: "DELETE", query: { prefix, ...(opts.soft ? { mode: "soft" } : {}) } });
  }
  /** Stages one chunk of a restore; `entriesJson` holds one `[key, entry]` pair of JSON text each. Sent once (a POST). */
  stageRestore(stage: string, entriesJson: readonly string[]) {
    return this.call<RestoreStaged>(`${API_PREFIX}/restore`, { method: "POST", body: `{"stage":${JSON.stringify(stage)},"entries":[${entriesJson.join(",")}]}` });
  }
  commitRestore(stage: string, commit: { digest: string; count: number }) {
    return this.call<RestoreResult>(`${API_PREFIX}/restore`, { method: "POST", json: { stage, commit } });
  }
  abortRestore(stage: string) {
    return this.call<{ stage: string; discarded: number }>(`${API_PREFIX}/restore/${encodeURIComponent(stage)}`, { method: "DELETE" });
  }
  flush() {
    return this.call<FlushResult>(`${API_PREFIX}/flush`, { method: "POST" });
  }
  snapshot(onDownload?: (received: number, total: number | null) => void) {
    return this.call<EntriesSnapshot>(`${API_PREFIX}/snapshot`, { method: "GET", ...(onDownload ? { onDownload } : {}) });
  }
  clear(scope: ClearScope) {
    return this.call<ClearResult>(API_PREFIX, { method: "DELETE", query: { scope } });
  }
}
