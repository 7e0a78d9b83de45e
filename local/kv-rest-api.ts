/**
 * A local stand-in for the subset of Cloudflare's Workers KV REST API that tftcache uses, written against the
 * Fetch API (Request in, Response out) and a KVNamespace, so it serves exactly the store the Worker's binding
 * writes. Shapes follow api.cloudflare.com/client/v4: the `{success, errors, messages, result}` envelope, raw
 * bodies for values, 404 with code 10009 for a missing key, cursor pagination for keys.
 */
export interface KvLike {
  get(key: string, type: "text"): Promise<string | null>;
  get(key: string, type: "stream"): Promise<ReadableStream<Uint8Array> | null>;
  getWithMetadata(key: string, type: "text"): Promise<{ value: string | null; metadata: unknown }>;
  put(key: string, value: string, options?: { metadata?: unknown }): Promise<void>;
  delete(key: string): Promise<void>;
  list(options: { prefix?: string; cursor?: string; limit?: number }): Promise<{
    keys: Array<{ name: string; expiration?: number; metadata?: unknown }>;
    list_complete: boolean;
    cursor?: string;
  }>;
}

export interface KvRestOptions {
  kv: KvLike;
  accountId: string;
  namespaceId: string;
  token: string;
}

const MAX_VALUE_BYTES = 25 * 1024 * 1024;

const envelope = (status: number, result: unknown, errors: Array<{ code: number; message: string }> = [], extra: Record<string, unknown> = {}) =>
  new Response(JSON.stringify({ success: errors.length === 0, errors, messages: [], result, ...extra }), {
    status,
    headers: { "content-type": "application/json" },
  });

const fail = (status: number, code: number, message: string) => envelope(status, null, [{ code, message }]);

export function createKvRestHandler(opts: KvRestOptions): (request: Request) => Promise<Response> {
  const prefix = `/client/v4/accounts/${opts.accountId}/storage/kv/namespaces/${opts.namespaceId}/`;
  return async (request) => {
    const url = new URL(request.url);
    const auth = request.headers.get("authorization");
    if (!auth) return fail(401, 10000, "Authentication error: missing Authorization header");
    if (auth !== `Bearer ${opts.token}`) return fail(403, 10000, "Authentication error");
    if (!url.pathname.startsWith("/client/v4/accounts/")) return fail(404, 7003, "Could not route to " + url.pathname + ", perhaps your object identifier is invalid?");
    if (!url.pathname.startsWith(`/client/v4/accounts/${opts.accountId}/`)) return fail(403, 10000, "Authentication error: token has no access to this account");
    if (!url.pathname.startsWith(prefix)) return fail(404, 10013, "namespace not found");
    const rest = url.pathname.slice(prefix.length);
    const [kind, ...keyParts] = rest.split("/");
    let key: string;
    try {
      key = decodeURIComponent(keyParts.join("/"));
    } catch {
      return fail(400, 10019, "invalid key encoding");
    }

    if (kind === "keys" && keyParts.length === 0) {
      if (request.method !== "GET") return fail(405, 10000, "method not allowed");
      const limit = Number(url.searchParams.get("limit") ?? "1000");
      if (!Number.isInteger(limit) || limit < 10 || limit > 1000) return fail(400, 10026, "limit must be between 10 and 1000");
      const listed = await opts.kv.list({
        limit,
        ...(url.searchParams.get("prefix") ? { prefix: url.searchParams.get("prefix")! } : {}),
        ...(url.searchParams.get("cursor") ? { cursor: url.searchParams.get("cursor")! } : {}),
      });
      const cursor = listed.list_complete ? "" : (listed.cursor ?? "");
      return envelope(200, listed.keys, [], { result_info: { count: listed.keys.length, cursor } });
    }
    if (!key) return fail(404, 7003, "no key in path");
    // KV keys are at most 512 bytes; Cloudflare refuses longer ones with a 4xx, and so does this stand-in.
    if (new TextEncoder().encode(key).byteLength > 512) return fail(414, 10019, "key is longer than 512 bytes");
    if (kind === "metadata") {
      if (request.method !== "GET") return fail(405, 10000, "method not allowed");
      const found = await opts.kv.getWithMetadata(key, "text");
      if (found.value === null) return fail(404, 10009, "get: 'key not found'");
      return envelope(200, found.metadata ?? null);
    }
    if (kind !== "values") return fail(404, 7003, `no route for ${kind}`);
    switch (request.method) {
      case "GET": {
        // Streamed: Miniflare's binding proxy hands a 20 MiB value over as a stream ~7x faster than as text.
        const value = await opts.kv.get(key, "stream");
        if (value === null) return fail(404, 10009, "get: 'key not found'");
        return new Response(value, { status: 200, headers: { "content-type": "application/octet-stream" } });
      }
      case "PUT": {
        let value: string;
        let metadata: unknown;
        if ((request.headers.get("content-type") ?? "").startsWith("multipart/form-data")) {
          let form: FormData;
          try {
            form = await request.formData();
          } catch (err) {
            return fail(400, 10012, `malformed multipart body: ${(err as Error).message}`);
          }
          const raw = form.get("value");
          value = typeof raw === "string" ? raw : raw ? await raw.text() : "";
          const meta = form.get("metadata");
          if (typeof meta === "string" && meta !== "") {
            try {
              metadata = JSON.parse(meta);
            } catch {
              return fail(400, 10012, "metadata is not valid JSON");
            }
          }
        } else value = await request.text();
        if (new TextEncoder().encode(value).byteLength > MAX_VALUE_BYTES) return fail(413, 10011, "value too large");
        await opts.kv.put(key, value, metadata === undefined ? {} : { metadata });
        return envelope(200, null);
      }
      case "DELETE":
        await opts.kv.delete(key);
        return envelope(200, null);
      default:
        return fail(405, 10000, "method not allowed");
    }
  };
}
