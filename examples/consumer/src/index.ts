import { LoaderTimeoutError, createCacheClient, type CacheServiceBinding } from "../../../client/index.js";

interface Env {
  TFTCACHE: CacheServiceBinding;
  CACHE_DO_KV?: KVNamespace;
  MARKET_API_URL?: string;
}

/** How many times this isolate called the market-data API: the number the cache exists to keep small. */
let upstreamCalls = 0;

/** How many times this isolate looked a symbol up in the (simulated) reference-data directory. */
let directoryCalls = 0;
const LISTED = new Set(["AAPL", "MSFT", "NVDA", "TSLA", "IBM"]);

/**
 * The expensive call. Simulated (with latency) when no MARKET_API_URL is configured; `outage` simulates the vendor
 * failing ("error": it answers 503) or hanging ("hang": it never answers in time).
 */
async function fetchQuote(symbol: string, env: Env, outage: string | null = null): Promise<{ symbol: string; bid: number; ask: number; at: number }> {
  upstreamCalls++;
  if (outage === "error") throw new Error("market data API answered 503");
  if (outage === "hang") await new Promise((r) => setTimeout(r, 60_000));
  if (env.MARKET_API_URL) {
    const res = await fetch(`${env.MARKET_API_URL}?symbol=${encodeURIComponent(symbol)}`);
    if (!res.ok) throw new Error(`market data API answered ${res.status}`);
    return (await res.json()) as { symbol: string; bid: number; ask: number; at: number };
  }
  await new Promise((r) => setTimeout(r, 50));
  const base = [...symbol].reduce((n, c) => n + c.charCodeAt(0), 0);
  return { symbol, bid: base, ask: base + 0.05, at: upstreamCalls };
}

/** A query parameter the example refuses: answered 400 with the reason, never silently replaced by a default. */
class BadRequest extends Error {}

/**
 * A numeric query parameter: absent means `fallback`; present, it must be a plain decimal within [min, max] (and
 * whole when `integer`). `?ttl=abc` once became NaN, which the cache refuses, so caching was silently off; and
 * `?timeout=abc` fell back to the 30 s default.
 */
function numberParam(url: URL, name: string, fallback: number, bounds: { min: number; max: number; integer?: boolean; minExclusive?: boolean }): number {
  const values = url.searchParams.getAll(name);
  if (values.length === 0) return fallback;
  if (values.length > 1) throw new BadRequest(`${name} is given more than once`);
  const raw = values[0]!;
  const n = /^\d+(\.\d+)?$/.test(raw) ? Number(raw) : Number.NaN;
  const whole = bounds.integer ? "a whole number" : "a number";
  const low = bounds.minExclusive ? `over ${bounds.min}` : `from ${bounds.min}`;
  const ok = Number.isFinite(n) && (bounds.minExclusive ? n > bounds.min : n >= bounds.min) && n <= bounds.max && (!bounds.integer || Number.isInteger(n));
  if (!ok) throw new BadRequest(`${name} must be ${whole} ${low} to ${bounds.max} (got ${JSON.stringify(raw)})`);
  return n;
}

const TEN_YEARS_S = 315_360_000;

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    try {
      return await route(request, env, ctx);
    } catch (err) {
      if (err instanceof BadRequest) return Response.json({ error: err.message }, { status: 400 });
      // A key that is not valid percent-encoding, or a PUT body that is not JSON: the request's fault.
      if (err instanceof URIError || err instanceof SyntaxError) return Response.json({ error: err.message }, { status: 400 });
      throw err;
    }
  },
} satisfies ExportedHandler<Env>;

/**
 * NOTE: this is an example, not a production Worker as it stands. Its write routes (PUT /kv/<key>, POST /batch)
 * and POST /invalidate are unauthenticated: anyone who can reach it can overwrite or purge cache entries. A real
 * consumer would put them behind its own authentication, or not expose them at all.
 */
async function route(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
  const url = new URL(request.url);
  const cache = createCacheClient(env.TFTCACHE, { ...(env.CACHE_DO_KV ? { kv: env.CACHE_DO_KV } : {}), ctx });
  const quote = url.pathname.match(/^\/quote\/([A-Za-z0-9.:-]{1,16})$/);
  if (quote) {
    const symbol = quote[1]!.toUpperCase();
    const ttl = numberParam(url, "ttl", 5, { min: 0, minExclusive: true, max: TEN_YEARS_S });
    const swr = numberParam(url, "swr", 30, { min: 0, max: TEN_YEARS_S });
    // stale-if-error: if the vendor fails or hangs, the last quote is still worth more than an error for 5 min.
    const sie = numberParam(url, "sie", 300, { min: 0, max: TEN_YEARS_S });
    const timeout = numberParam(url, "timeout", 5000, { min: 1, max: 120_000, integer: true });
    const outage = url.searchParams.get("outage");
    try {
      // A quote the vendor has not produced in 5 s is no use to a trader: give up on it (every request waiting
      // for this symbol gets the same answer at once) and let the next request try again.
      const value = await cache.getOrSet(`quote:${symbol}`, () => fetchQuote(symbol, env, outage), {
        ttlSeconds: ttl,
        ...(swr > 0 ? { staleWhileRevalidateSeconds: swr } : {}),
        ...(sie > 0 ? { staleIfErrorSeconds: sie } : {}),
        ttlJitter: 0.1, // quotes cached together do not all expire in the same second
        loadTimeoutMs: timeout,
      });
      return Response.json({ quote: value, cache: cache.stats() });
    } catch (err) {
      // Only the market-data call's own failure gets here: the client absorbs every cache problem.
      return Response.json({ error: (err as Error).message }, { status: err instanceof LoaderTimeoutError ? 504 : 502 });
    }
  }
  if (url.pathname === "/upstream-calls") return Response.json({ upstreamCalls, directoryCalls });
  // Negative caching: an unknown symbol is "not found" (the loader returns undefined), remembered for 60 s, so
  // a client asking for it in a loop does not hammer the directory.
  const symbol = url.pathname.match(/^\/symbol\/([A-Za-z0-9.:-]{1,16})$/);
  if (symbol) {
    const sym = symbol[1]!.toUpperCase();
    const info = await cache.getOrSet(
      `symbol:${sym}`,
      async () => {
        directoryCalls++;
        return LISTED.has(sym) ? { symbol: sym, listed: true } : undefined;
      },
      { ttlSeconds: 3600, negativeTtlSeconds: 60 },
    );
    return Response.json({ found: info !== undefined, info: info ?? null, cache: cache.stats() }, { status: info === undefined ? 404 : 200 });
  }
  // Provenance: GET /lookup/<key>?maxStalenessMs=2000 says where the value came from (memory, do, kv) and how
  // old it is; with maxStalenessMs, an older value is refused (found: false, tooOld: true) rather than served.
  const lookup = url.pathname.match(/^\/lookup\/(.+)$/);
  if (lookup && request.method === "GET") {
    const k = decodeURIComponent(lookup[1]!);
    const maxStalenessMs = url.searchParams.has("maxStalenessMs") ? numberParam(url, "maxStalenessMs", 0, { min: 0, max: Number.MAX_SAFE_INTEGER }) : undefined;
    const r = await cache.lookup(k, maxStalenessMs === undefined ? {} : { maxStalenessMs });
    return Response.json({ key: k, ...r, cache: cache.stats() }, { status: r.found ? 200 : 404 });
  }
  // Invalidation by prefix: POST /invalidate?prefix=quote:AAPL&mode=soft (soft: served stale once while refreshed).
  // Unauthenticated here (see the note above route): a real Worker would guard it.
  if (url.pathname === "/invalidate" && request.method === "POST") {
    const prefix = url.searchParams.get("prefix") ?? "";
    const modes = url.searchParams.getAll("mode");
    const asked = modes.length === 0 ? "hard" : modes[0]!;
    // Exactly "hard" or "soft": `mode=Soft` once fell through to a hard purge.
    if (modes.length > 1 || (asked !== "hard" && asked !== "soft")) throw new BadRequest(`mode must be hard (the default) or soft, once (got ${JSON.stringify(modes.join(","))})`);
    const mode: "hard" | "soft" = asked;
    const count = await cache.deletePrefix(prefix, { mode });
    return Response.json({ prefix, mode, count }, { status: count === null ? 400 : 200 });
  }
  // TTL jitter: POST /batch?n=20 writes n positions with a 300 s TTL shortened by up to 20%.
  if (url.pathname === "/batch" && request.method === "POST") {
    const n = numberParam(url, "n", 20, { min: 1, max: 100, integer: true });
    const written = await Promise.all(Array.from({ length: n }, (_, i) => cache.set(`batch:${i}`, { qty: i }, { ttlSeconds: 300, ttlJitter: 0.2 })));
    return Response.json({ written: written.filter(Boolean).length });
  }
  const key = url.pathname.match(/^\/kv\/(.+)$/);
  if (key) {
    const k = decodeURIComponent(key[1]!);
    if (request.method === "PUT") return Response.json({ ok: await cache.set(k, await request.json(), { ttlSeconds: 300 }) });
    const value = await cache.get(k);
    return Response.json({ found: value !== undefined, value: value ?? null, cache: cache.stats() });
  }
  return new Response("try /quote/AAPL (?outage=error|hang), /symbol/AAPL, /kv/<key>, /lookup/<key>?maxStalenessMs=2000, POST /invalidate?prefix=quote:&mode=soft, POST /batch, /upstream-calls\n", { status: 404 });
}
