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

export default {
  async fetch(request: Request, env: Env, ctx: ExecutionContext): Promise<Response> {
    const url = new URL(request.url);
    const cache = createCacheClient(env.TFTCACHE, { ...(env.CACHE_DO_KV ? { kv: env.CACHE_DO_KV } : {}), ctx });
    const quote = url.pathname.match(/^\/quote\/([A-Za-z0-9.:-]{1,16})$/);
    if (quote) {
      const symbol = quote[1]!.toUpperCase();
      const ttl = Number(url.searchParams.get("ttl") ?? "5");
      const swr = Number(url.searchParams.get("swr") ?? "30");
      // stale-if-error: if the vendor fails or hangs, the last quote is still worth more than an error for 5 min.
      const sie = Number(url.searchParams.get("sie") ?? "300");
      const timeout = Number(url.searchParams.get("timeout") ?? "5000");
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
    // Invalidation by prefix: POST /invalidate?prefix=quote:AAPL&mode=soft (soft: served stale once while refreshed).
    if (url.pathname === "/invalidate" && request.method === "POST") {
      const prefix = url.searchParams.get("prefix") ?? "";
      const mode = url.searchParams.get("mode") === "soft" ? "soft" : "hard";
      const count = await cache.deletePrefix(prefix, { mode });
      return Response.json({ prefix, mode, count }, { status: count === null ? 400 : 200 });
    }
    // TTL jitter: POST /batch?n=20 writes n positions with a 300 s TTL shortened by up to 20%.
    if (url.pathname === "/batch" && request.method === "POST") {
      const n = Math.min(Math.max(Number(url.searchParams.get("n") ?? "20") || 0, 1), 100);
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
    return new Response("try /quote/AAPL (?outage=error|hang), /symbol/AAPL, /kv/<key>, POST /invalidate?prefix=quote:&mode=soft, POST /batch, /upstream-calls\n", { status: 404 });
  },
} satisfies ExportedHandler<Env>;
