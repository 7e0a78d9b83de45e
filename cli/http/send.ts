import { createHash } from "node:crypto";
import { errors, request, type Dispatcher } from "undici";
import { CliError } from "../errors.js";

export interface HttpOptions {
  /** Injected in tests (undici MockAgent); the global dispatcher otherwise. */
  dispatcher?: Dispatcher;
  timeoutMs: number;
  /** Retries after the first attempt, for idempotent requests only. */
  retries: number;
  /** Longest Retry-After we are willing to sleep through before giving up. */
  maxRetryAfterMs?: number;
  sleep?: (ms: number) => Promise<void>;
  onRetry?: (info: { attempt: number; delayMs: number; reason: string }) => void;
}

export interface HttpResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  /** The body as text; empty for a 2xx answer to a `binary` request, whose body is in `chunks`. */
  text: string;
  /** A `binary` body as it arrived, not joined: a caller that only hashes 20 MiB never copies them (~8 ms). */
  chunks?: Buffer[];
  /** SHA-256 of the `chunks` in hex, computed as they arrived (a `binary` request with `sha256`). */
  sha256?: string;
  url: string;
}

export interface SendInit {
  method: "GET" | "PUT" | "POST" | "DELETE";
  headers?: Record<string, string>;
  body?: string;
  /** GET, PUT and DELETE are; POST is not, unless the caller knows better. */
  idempotent?: boolean;
  /** Called as the response body arrives (bytes so far, and content-length when the server sent one). */
  onDownload?: (received: number, total: number | null) => void;
  /** Keep a 2xx body as bytes (`chunks`) without decoding it: a caller that may only hash 20 MiB saves the decode. */
  binary?: boolean;
  /**
   * Also hash a `binary` body while it downloads (`sha256`): 20 MiB take ~25 ms to hash, time that otherwise
   * starts only after the last byte.
   */
  sha256?: boolean;
}

const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);
const RETRYABLE_CODES = new Set(["ECONNRESET", "EPIPE", "UND_ERR_SOCKET"]);
const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/**
 * `path` appended to `base`, not resolved against it: a Worker mounted under a path prefix
 * (https://example.com/cache) keeps it, which `new URL("/health", base)` would drop.
 */
export function endpoint(base: string, path: string): URL {
  return new URL(`${base.replace(/\/+$/, "")}${path}`);
}

/** Retry-After is either delta-seconds or an HTTP date. */
export function parseRetryAfter(value: string | string[] | undefined, now = Date.now()): number | null {
  const raw = Array.isArray(value) ? value[0] : value;
  if (!raw) return null;
  if (/^\d+(\.\d+)?$/.test(raw.trim())) return Math.round(Number(raw) * 1000);
  const date = Date.parse(raw);
  return Number.isNaN(date) ? null : Math.max(0, date - now);
}

function backoffMs(attempt: number): number {
  const base = 250 * 2 ** attempt;
  return base + Math.floor(Math.random() * base * 0.25);
}

function describeNetworkError(err: unknown, url: URL, timeoutMs: number, method: string): CliError {
  const e = err as { code?: string; name?: string; message?: string; cause?: { code?: string } };
  const code = e.code ?? e.cause?.code;
  if (e.name === "TimeoutError" || e.name === "AbortError" || err instanceof errors.HeadersTimeoutError || err instanceof errors.BodyTimeoutError) {
    return new CliError(`${method} ${url.origin}${url.pathname} timed out after ${timeoutMs} ms`, {
      hint: "the server is slow or hung; raise --timeout or check the Worker",
      cause: err,
    });
  }
  // undici refuses a header value with a line break or control character before sending anything: that is a
  // bad setting (a secret pasted with a newline), not a network problem.
  if (err instanceof errors.InvalidArgumentError || code === "UND_ERR_INVALID_ARG") {
    return new CliError(`cannot send ${method} ${url.origin}${url.pathname}: ${e.message ?? "invalid request"}`, {
      hint: "a header value (the API key or token) contains characters not allowed in an HTTP header",
      cause: err,
    });
  }
  const why = code === "ECONNREFUSED" ? "connection refused" : code === "ENOTFOUND" ? "host not found" : (code ?? e.message ?? "network error");
  return new CliError(`cannot reach ${url.origin}: ${why}`, {
    hint: url.hostname === "127.0.0.1" || url.hostname === "localhost" ? "is the local stack running? start it with `npm start`" : "check --url / the network",
    cause: err,
  });
}

/**
 * One HTTP exchange with a per-attempt timeout, retrying idempotent requests on 429/5xx and dropped connections
 * with exponential backoff that honours Retry-After. Non-idempotent requests are sent once.
 */
export async function send(url: URL, init: SendInit, opts: HttpOptions): Promise<HttpResponse> {
  const idempotent = init.idempotent ?? init.method !== "POST";
  const sleep = opts.sleep ?? defaultSleep;
  const maxAttempts = idempotent ? opts.retries + 1 : 1;
  for (let attempt = 0; ; attempt++) {
    let response: HttpResponse;
    try {
      const res = await request(url, {
        method: init.method,
        headers: init.headers,
        body: init.body,
        signal: AbortSignal.timeout(opts.timeoutMs),
        ...(opts.dispatcher ? { dispatcher: opts.dispatcher } : {}),
      });
      let text: string;
      let chunks: Buffer[] | undefined;
      let sha256: string | undefined;
      // A 2xx `binary` body stays bytes; a body read for progress (onDownload) is decoded at the end.
      const keepBytes = !init.onDownload && init.binary === true && res.statusCode >= 200 && res.statusCode < 300;
      if (init.onDownload || keepBytes) {
        const length = Number(res.headers["content-length"]);
        const total = Number.isFinite(length) && length > 0 ? length : null;
        const hash = keepBytes && init.sha256 ? createHash("sha256") : null;
        const got: Buffer[] = [];
        let received = 0;
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          got.push(chunk);
          received += chunk.byteLength;
          hash?.update(chunk);
          init.onDownload?.(received, total);
        }
        if (keepBytes) {
          chunks = got;
          if (hash) sha256 = hash.digest("hex");
          text = "";
        } else text = Buffer.concat(got).toString("utf8");
      } else text = await res.body.text();
      response = { status: res.statusCode, headers: res.headers, text, ...(chunks ? { chunks } : {}), ...(sha256 ? { sha256 } : {}), url: url.toString() };
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (attempt + 1 < maxAttempts && code !== undefined && RETRYABLE_CODES.has(code)) {
        const delayMs = backoffMs(attempt);
        opts.onRetry?.({ attempt: attempt + 1, delayMs, reason: code });
        await sleep(delayMs);
        continue;
      }
      throw describeNetworkError(err, url, opts.timeoutMs, init.method);
    }
    if (!RETRYABLE_STATUS.has(response.status) || attempt + 1 >= maxAttempts) return response;
    const retryAfter = parseRetryAfter(response.headers["retry-after"]);
    if (retryAfter !== null && retryAfter > (opts.maxRetryAfterMs ?? 60_000)) return response;
    const delayMs = retryAfter ?? backoffMs(attempt);
    opts.onRetry?.({ attempt: attempt + 1, delayMs, reason: `HTTP ${response.status}` });
    await sleep(delayMs);
  }
}
