/**
 * Slows down guessing the admin key. Failed attempts are counted per client address by the Workers Rate Limiting
 * binding `AUTH_RATE_LIMITER` (wrangler.toml `[[ratelimits]]`: 10 per 60 s). A client over that limit gets 429
 * with Retry-After, and this isolate then refuses *every* request from it until the period ends, the right key
 * included: otherwise a guesser would simply ignore the 429s and wait for the one 200.
 *
 * Limits worth knowing: the binding's counts are per Cloudflare location and eventually consistent, and the
 * block on correct keys is per isolate; both slow a guesser down by orders of magnitude, neither replaces a
 * long random key (see `tftcache doctor`).
 */
export const AUTH_FAILURE_PERIOD_SECONDS = 60;
/** How many blocked clients an isolate remembers; the oldest are forgotten first. */
const MAX_BLOCKED = 10_000;

const blockedUntil = new Map<string, number>();

/** The client's address as Cloudflare reports it; locally (no header) every client shares one bucket. */
export function clientAddress(request: Request): string {
  return request.headers.get("cf-connecting-ip") ?? "local";
}

/** Seconds until this client may try again, or 0. */
export function blockedFor(client: string, now = Date.now()): number {
  const until = blockedUntil.get(client);
  if (until === undefined) return 0;
  if (until <= now) {
    blockedUntil.delete(client);
    return 0;
  }
  return Math.ceil((until - now) / 1000);
}

/**
 * Counts one failed attempt; returns the seconds to wait when the client is now over the limit, else 0. Without
 * the binding (an old deploy, a test harness) nothing is counted.
 */
export async function recordFailure(limiter: RateLimit | undefined, client: string, now = Date.now()): Promise<number> {
  if (!limiter) return 0;
  let outcome: RateLimitOutcome;
  try {
    outcome = await limiter.limit({ key: `admin-auth:${client}` });
  } catch {
    return 0; // the limiter failing must not lock the operator out
  }
  if (outcome.success) return 0;
  if (blockedUntil.size >= MAX_BLOCKED) blockedUntil.delete(blockedUntil.keys().next().value!);
  blockedUntil.set(client, now + AUTH_FAILURE_PERIOD_SECONDS * 1000);
  return AUTH_FAILURE_PERIOD_SECONDS;
}
