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

/**
 * Constant-time comparison. Both sides are hashed first so the comparison runs over equal lengths and leaks
 * neither the key's length nor the length of the matching prefix.
 */
export async function keysMatch(presented: string, expected: string): Promise<boolean> {
  const [a, b] = await Promise.all([
    crypto.subtle.digest("SHA-256", encoder.encode(presented)),
    crypto.subtle.digest("SHA-256", encoder.encode(expected)),
  ]);
  return crypto.subtle.timingSafeEqual(a, b);
}

/** Null when the request may proceed; otherwise the response to send. Fails closed when no key is configured. */
export async function authorize(request: Request, adminKey: string | undefined): Promise<Response | null> {
  if (!adminKey) {
    return error(503, "admin_disabled", "the admin API is disabled: ADMIN_API_KEY is not set on this Worker");
  }
  const presented = presentedKey(request);
  if (presented === null || presented === "") {
    return error(401, "unauthorized", "missing API key: send X-API-KEY or Authorization: Bearer", undefined, {
      "www-authenticate": 'Bearer realm="tftcache"',
    });
  }
  if (!(await keysMatch(presented, adminKey))) {
    return error(401, "unauthorized", "API key refused", undefined, { "www-authenticate": 'Bearer realm="tftcache"' });
  }
  return null;
}
