import { CliError } from "../errors.js";
import { send, type HttpOptions, type HttpResponse } from "./send.js";

/** Cloudflare's "key not found" error code on the KV values endpoint. */
export const KV_KEY_NOT_FOUND = 10009;

/** One of Cloudflare's errors; `error_chain` holds the causes (6003 "Invalid request headers" ← 6111 "Invalid format for Authorization header"). */
interface CfError {
  code: number;
  message: string;
  error_chain?: CfError[];
}

interface CfEnvelope<T> {
  success: boolean;
  errors: CfError[];
  messages?: unknown[];
  result: T;
  result_info?: { count?: number; cursor?: string };
}

/** Cloudflare's codes for a request whose credentials are missing or malformed, answered with 400 rather than 401/403. */
export const CF_AUTH_HEADER_CODES = [6003, 9106] as const;
/** Cloudflare's "Authentication error": a bad token, a token without KV access, or a token for another account. */
export const CF_AUTH_ERROR = 10000;
/** Cloudflare's limits on the page size of a key listing. */
export const KV_LIST_LIMIT = { min: 10, max: 1000 } as const;

/** A key's metadata: a missing key and a key written without metadata are different answers. */
export type KvMetadataRead = { found: false } | { found: true; metadata: unknown };

export interface KvKey {
  name: string;
  expiration?: number;
  metadata?: unknown;
}

/** Thrown for any failure Cloudflare's API reports; carries its error codes. */
export class CloudflareApiError extends CliError {
  constructor(
    readonly status: number,
    readonly codes: number[],
    message: string,
    hint?: string,
  ) {
    super(message, hint === undefined ? {} : { hint });
  }
}

function envelopeOf<T>(res: HttpResponse): CfEnvelope<T> | null {
  try {
    const body = JSON.parse(res.text) as CfEnvelope<T>;
    return typeof body === "object" && body !== null && typeof body.success === "boolean" ? body : null;
  } catch {
    return null;
  }
}

/** `[6003] Invalid request headers ← [6111] Invalid format for Authorization header`: each error with its causes. */
function describeError(e: CfError): string {
  const chain = Array.isArray(e.error_chain) && e.error_chain.length > 0 ? ` (${e.error_chain.map((c) => `← ${describeError(c)}`).join(" ")})` : "";
  return `[${e.code}] ${e.message}${chain}`;
}

const header = (res: HttpResponse, name: string): string => {
  const v = res.headers[name];
  return Array.isArray(v) ? v.join(", ") : (v ?? "");
};

/**
 * A Cloudflare challenge (a WAF, Bot Fight Mode or "Under Attack" rule) answers with an HTML page and
 * `cf-mitigated: challenge`: the request never reached the API, and no client without a browser can pass it.
 */
export function isChallenge(res: HttpResponse): boolean {
  return header(res, "cf-mitigated").toLowerCase().includes("challenge");
}

function failure(res: HttpResponse, what: string, accountId: string): CloudflareApiError {
  if (isChallenge(res)) {
    return new CloudflareApiError(
      res.status,
      [],
      `Cloudflare API ${what}: HTTP ${res.status} challenge page (cf-mitigated: challenge): a Cloudflare security rule stopped the request before it reached the API`,
      `this is not an authentication failure: a WAF, Bot Fight Mode or "Under Attack" rule in front of ${new URL(res.url).origin} wants a browser to solve a challenge. Check --cf-api-base / CLOUDFLARE_API_BASE_URL (a proxy or custom domain in front of the API?) or the network you run from`,
    );
  }
  const env = envelopeOf<unknown>(res);
  if (!env) {
    const snippet = res.text.slice(0, 80).replace(/\s+/g, " ");
    return new CloudflareApiError(res.status, [], `Cloudflare API ${what}: HTTP ${res.status} with an unreadable body${snippet ? ` (${JSON.stringify(snippet)})` : ""}`);
  }
  const errors = Array.isArray(env.errors) ? env.errors : [];
  const codes = errors.map((e) => e.code);
  const detail = errors.length ? errors.map(describeError).join("; ") : `HTTP ${res.status}`;
  const tokenHint = "check --api-token / CLOUDFLARE_API_TOKEN: it needs Workers KV Storage Read on this account (the CLI never writes KV)";
  let hint: string | undefined;
  let message = `Cloudflare API ${what}: ${detail}`;
  if (res.status === 400 && codes.some((c) => (CF_AUTH_HEADER_CODES as readonly number[]).includes(c))) {
    // Cloudflare answers a missing or malformed Authorization header with 400, not 401.
    message = `Cloudflare API ${what}: authentication failed: ${detail}`;
    hint = `${tokenHint}; the token is sent as "Authorization: Bearer <token>" and must be an API token (not the Global API Key)`;
  } else if (res.status === 401 || res.status === 403 || codes.includes(CF_AUTH_ERROR)) {
    hint = `${tokenHint}, and that --account-id (${accountId}) is the account that owns the namespace: a token for another account is refused the same way (403, code ${CF_AUTH_ERROR})`;
  } else if (res.status === 404) hint = "check --account-id and --namespace-id (or the CACHE_DO_KV id in the wrangler config; --preview for preview_id)";
  else if (res.status === 429) hint = "Cloudflare rate-limited the request; wait and retry";
  return new CloudflareApiError(res.status, codes, message, hint);
}

/** A value's bytes as they arrived, and their SHA-256 in hex. */
export interface KvBytes {
  chunks: Buffer[];
  sha256: string;
}

/** The value as text (UTF-8, as KV stores it). */
export const kvText = (value: KvBytes): string => Buffer.concat(value.chunks).toString("utf8");

/** SHA-256 of no bytes: what an answer without a body would hash to (send() always hashes a binary 2xx body). */
const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** The subset of Cloudflare's Workers KV REST API that tftcache needs, over one namespace. */
export class KvRestClient {
  private readonly base: string;

  constructor(
    apiBase: string,
    private readonly accountId: string,
    namespaceId: string,
    private readonly token: string,
    private readonly http: HttpOptions,
  ) {
    this.base = `${apiBase.replace(/\/$/, "")}/accounts/${encodeURIComponent(accountId)}/storage/kv/namespaces/${encodeURIComponent(namespaceId)}`;
  }

  private headers(extra: Record<string, string> = {}): Record<string, string> {
    return { authorization: `Bearer ${this.token}`, ...extra };
  }

  private isMissing(res: HttpResponse): boolean {
    if (res.status !== 404) return false;
    return envelopeOf<unknown>(res)?.errors?.some((e) => e.code === KV_KEY_NOT_FOUND) ?? false;
  }

  /** The raw value, or null when the key does not exist (404 with code 10009). */
  async getValue(key: string, onDownload?: (received: number, total: number | null) => void): Promise<string | null> {
    const res = await send(new URL(`${this.base}/values/${encodeURIComponent(key)}`), { method: "GET", headers: this.headers(), ...(onDownload ? { onDownload } : {}) }, this.http);
    if (res.status === 200) return res.text;
    if (this.isMissing(res)) return null;
    throw failure(res, `GET ${key}`, this.accountId);
  }

  /** The raw value as bytes, undecoded, with their SHA-256 (hex, hashed as they arrived); null when the key does not exist. */
  async getValueBytes(key: string): Promise<KvBytes | null> {
    const res = await send(new URL(`${this.base}/values/${encodeURIComponent(key)}`), { method: "GET", headers: this.headers(), binary: true, sha256: true }, this.http);
    if (res.status === 200) return { chunks: res.chunks ?? [], sha256: res.sha256 ?? EMPTY_SHA256 };
    if (this.isMissing(res)) return null;
    throw failure(res, `GET ${key}`, this.accountId);
  }

  async putValue(key: string, value: string): Promise<void> {
    const res = await send(
      new URL(`${this.base}/values/${encodeURIComponent(key)}`),
      { method: "PUT", headers: this.headers({ "content-type": "application/octet-stream" }), body: value },
      this.http,
    );
    const env = envelopeOf<unknown>(res);
    if (res.status !== 200 || !env?.success) throw failure(res, `PUT ${key}`, this.accountId);
  }

  /** True if a key was deleted; false if it was already absent. */
  async deleteValue(key: string): Promise<boolean> {
    const res = await send(new URL(`${this.base}/values/${encodeURIComponent(key)}`), { method: "DELETE", headers: this.headers() }, this.http);
    if (this.isMissing(res)) return false;
    const env = envelopeOf<unknown>(res);
    if (res.status !== 200 || !env?.success) throw failure(res, `DELETE ${key}`, this.accountId);
    return true;
  }

  /** Every key with the prefix, following cursors until the last page; `pageSize` is Cloudflare's `limit` (10 to 1000). */
  async listKeys(prefix = "", pageSize = 1000): Promise<KvKey[]> {
    if (!Number.isInteger(pageSize) || pageSize < KV_LIST_LIMIT.min || pageSize > KV_LIST_LIMIT.max) {
      throw new CliError(`KV key listing: limit must be a whole number from ${KV_LIST_LIMIT.min} to ${KV_LIST_LIMIT.max} (got ${pageSize}); Cloudflare refuses anything else`);
    }
    const keys: KvKey[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 10_000; page++) {
      const url = new URL(`${this.base}/keys`);
      url.searchParams.set("limit", String(pageSize));
      if (prefix) url.searchParams.set("prefix", prefix);
      if (cursor) url.searchParams.set("cursor", cursor);
      const res = await send(url, { method: "GET", headers: this.headers() }, this.http);
      const env = envelopeOf<KvKey[]>(res);
      if (res.status !== 200 || !env?.success || !Array.isArray(env.result)) throw failure(res, "list keys", this.accountId);
      keys.push(...env.result);
      cursor = env.result_info?.cursor || undefined;
      if (!cursor) return keys;
    }
    throw new CliError("Cloudflare API list keys: too many pages (cursor never ended)");
  }

  /**
   * The key's metadata. `{found: false}` when the key does not exist (404, code 10009); `{found: true, metadata:
   * null}` when it exists but was written without metadata (200 with a null result).
   */
  async getMetadata(key: string): Promise<KvMetadataRead> {
    const res = await send(new URL(`${this.base}/metadata/${encodeURIComponent(key)}`), { method: "GET", headers: this.headers() }, this.http);
    if (this.isMissing(res)) return { found: false };
    const env = envelopeOf<unknown>(res);
    if (res.status !== 200 || !env?.success) throw failure(res, `metadata ${key}`, this.accountId);
    return { found: true, metadata: env.result ?? null };
  }
}
