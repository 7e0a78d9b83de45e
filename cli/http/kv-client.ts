import { CliError } from "../errors.js";
import { send, type HttpOptions, type HttpResponse } from "./send.js";

/** Cloudflare's "key not found" error code on the KV values endpoint. */
export const KV_KEY_NOT_FOUND = 10009;

interface CfEnvelope<T> {
  success: boolean;
  errors: Array<{ code: number; message: string }>;
  messages?: unknown[];
  result: T;
  result_info?: { count?: number; cursor?: string };
}

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

function failure(res: HttpResponse, what: string): CloudflareApiError {
  const env = envelopeOf<unknown>(res);
  if (!env) {
    const snippet = res.text.slice(0, 80).replace(/\s+/g, " ");
    return new CloudflareApiError(res.status, [], `Cloudflare API ${what}: HTTP ${res.status} with an unreadable body${snippet ? ` (${JSON.stringify(snippet)})` : ""}`);
  }
  const codes = env.errors?.map((e) => e.code) ?? [];
  const detail = env.errors?.length ? env.errors.map((e) => `[${e.code}] ${e.message}`).join("; ") : `HTTP ${res.status}`;
  let hint: string | undefined;
  if (res.status === 401 || res.status === 403 || codes.includes(10000)) hint = "check --api-token / CLOUDFLARE_API_TOKEN: it needs Workers KV Storage read (and edit, to write) on this account";
  else if (res.status === 404) hint = "check --account-id and --namespace-id (or the CACHE_DO_KV id in wrangler.toml; --preview for preview_id)";
  else if (res.status === 429) hint = "Cloudflare rate-limited the request; wait and retry";
  return new CloudflareApiError(res.status, codes, `Cloudflare API ${what}: ${detail}`, hint);
}

/** The subset of Cloudflare's Workers KV REST API that tftcache needs, over one namespace. */
export class KvRestClient {
  private readonly base: string;

  constructor(
    apiBase: string,
    accountId: string,
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
  async getValue(key: string): Promise<string | null> {
    const res = await send(new URL(`${this.base}/values/${encodeURIComponent(key)}`), { method: "GET", headers: this.headers() }, this.http);
    if (res.status === 200) return res.text;
    if (this.isMissing(res)) return null;
    throw failure(res, `GET ${key}`);
  }

  async putValue(key: string, value: string): Promise<void> {
    const res = await send(
      new URL(`${this.base}/values/${encodeURIComponent(key)}`),
      { method: "PUT", headers: this.headers({ "content-type": "application/octet-stream" }), body: value },
      this.http,
    );
    const env = envelopeOf<unknown>(res);
    if (res.status !== 200 || !env?.success) throw failure(res, `PUT ${key}`);
  }

  /** True if a key was deleted; false if it was already absent. */
  async deleteValue(key: string): Promise<boolean> {
    const res = await send(new URL(`${this.base}/values/${encodeURIComponent(key)}`), { method: "DELETE", headers: this.headers() }, this.http);
    if (this.isMissing(res)) return false;
    const env = envelopeOf<unknown>(res);
    if (res.status !== 200 || !env?.success) throw failure(res, `DELETE ${key}`);
    return true;
  }

  /** Every key with the prefix, following cursors until the last page. */
  async listKeys(prefix = "", pageSize = 1000): Promise<KvKey[]> {
    const keys: KvKey[] = [];
    let cursor: string | undefined;
    for (let page = 0; page < 10_000; page++) {
      const url = new URL(`${this.base}/keys`);
      url.searchParams.set("limit", String(pageSize));
      if (prefix) url.searchParams.set("prefix", prefix);
      if (cursor) url.searchParams.set("cursor", cursor);
      const res = await send(url, { method: "GET", headers: this.headers() }, this.http);
      const env = envelopeOf<KvKey[]>(res);
      if (res.status !== 200 || !env?.success || !Array.isArray(env.result)) throw failure(res, "list keys");
      keys.push(...env.result);
      cursor = env.result_info?.cursor || undefined;
      if (!cursor) return keys;
    }
    throw new CliError("Cloudflare API list keys: too many pages (cursor never ended)");
  }

  /** The key's metadata, or null when the key does not exist. */
  async getMetadata(key: string): Promise<unknown | null> {
    const res = await send(new URL(`${this.base}/metadata/${encodeURIComponent(key)}`), { method: "GET", headers: this.headers() }, this.http);
    if (this.isMissing(res)) return null;
    const env = envelopeOf<unknown>(res);
    if (res.status !== 200 || !env?.success) throw failure(res, `metadata ${key}`);
    return env.result ?? null;
  }
}
