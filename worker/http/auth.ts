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

/** The configured key's bytes, encoded once per isolate (per key) rather than on every request. */
let expected: { key: string; bytes: Uint8Array } | null = null;

/**
 * Constant-time comparison. The presented key is copied into a buffer of the expected key's length and the two
 * compared with timingSafeEqual, so the time does not depend on where they differ (the length of a matching
 * prefix); the lengths are compared apart. Hashing every presented key with SHA-256 did the same job at a
 * quarter of a GET hit's CPU (crypto.subtle.digest is a promise through the runtime's event loop).
 */
export function keysMatch(presented: string, expectedKey: string): boolean {
  if (expected?.key !== expectedKey) expected = { key: expectedKey, bytes: encoder.encode(expectedKey) };
  const want = expected.bytes;
  const got = encoder.encode(presented);
  const padded = new Uint8Array(want.length);
  padded.set(got.subarray(0, want.length));
  const same = crypto.subtle.timingSafeEqual(padded, want);
  return same && got.length === want.length;
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
  if (keysMatch(presented, adminKey)) return null;
  const over = await recordFailure(limiter, client);
  if (over > 0) return tooManyAttempts(over);
  return error(401, "unauthorized", "API key refused", undefined, CHALLENGE);
}
