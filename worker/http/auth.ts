import { blockedFor, clientAddress, recordFailure } from "./auth-throttle.js";
import { error } from "./envelope.js";

const encoder = new TextEncoder();

/** The presented key: `X-API-KEY: <key>` or `Authorization: Bearer <key>`. */
export function presentedKey(request: Request): string | null {
  const header = request.headers.get("x-api-key");
  if (header !== null) return header;
  const authorization = request.headers.get("authorization");
  const match = authorization?.match(/^Bearer[ ]+(.+)$/i);
  return match ? match[1]!.trim() : null;
}

/** The configured key's hash, computed once per isolate (per key) rather than on every request. */
let expected: { key: string; hash: Promise<ArrayBuffer> } | null = null;

/**
 * Constant-time comparison. Both sides are hashed first so the comparison runs over equal lengths and leaks
 * neither the key's length nor the length of the matching prefix.
 */
export async function keysMatch(presented: string, expectedKey: string): Promise<boolean> {
  if (expected?.key !== expectedKey) expected = { key: expectedKey, hash: crypto.subtle.digest("SHA-256", encoder.encode(expectedKey)) };
  const [a, b] = await Promise.all([crypto.subtle.digest("SHA-256", encoder.encode(presented)), expected.hash]);
  return crypto.subtle.timingSafeEqual(a, b);
}

const CHALLENGE = { "www-authenticate": 'Bearer realm="tftcache"' };

function tooManyAttempts(seconds: number): Response {
  return error(429, "rate_limited", `too many failed authentication attempts from this client; retry after ${seconds} s`, undefined, {
    "retry-after": String(seconds),
  });
}

/**
 * Null when the request may proceed; otherwise the response to send. Fails closed when no key is configured;
 * failed attempts are rate limited (auth-throttle.ts).
 */
export async function authorize(request: Request, adminKey: string | undefined, limiter?: RateLimit): Promise<Response | null> {
  if (!adminKey) {
    return error(503, "admin_disabled", "the admin API is disabled: ADMIN_API_KEY is not set on this Worker");
  }
  const client = clientAddress(request);
  const wait = blockedFor(client);
  if (wait > 0) return tooManyAttempts(wait);
  const presented = presentedKey(request);
  // A missing key guesses nothing, so it is not counted: a misconfigured script cannot lock its operator out.
  if (presented === null || presented === "") {
    return error(401, "unauthorized", "missing API key: send X-API-KEY or Authorization: Bearer", undefined, CHALLENGE);
  }
  if (await keysMatch(presented, adminKey)) return null;
  const over = await recordFailure(limiter, client);
  if (over > 0) return tooManyAttempts(over);
  return error(401, "unauthorized", "API key refused", undefined, CHALLENGE);
}
