import { LoaderTimeoutError, createCacheClient, type CacheServiceBinding } from "../../../client/index.js";

interface Env {
  TFTCACHE: CacheServiceBinding;
  CACHE_DO_KV?: KVNamespace;
  MARKET_API_URL?: string;
}

/** How many times this isolate called the market-data API: the number the cache exists to keep small. */
let upstreamCalls = 0;

/** The expensive call. Simulated (with latency) when no MARKET_API_URL is configured. */
async function fetchQuote(symbol: string, env: Env): Promise<{ symbol: string; bid: number; ask: number; at: number }> {
  upstreamCalls++;
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
      try {
        // A quote the vendor has not produced in 5 s is no use to a trader: give up on it (every request waiting
        // for this symbol gets the same answer at once) and let the next request try again.
        const value = await cache.getOrSet(`quote:${symbol}`, () => fetchQuote(symbol, env), { ttlSeconds: ttl, staleWhileRevalidateSeconds: swr, loadTimeoutMs: 5_000 });
        return Response.json({ quote: value, cache: cache.stats() });
      } catch (err) {
        // Only the market-data call's own failure gets here: the client absorbs every cache problem.
        return Response.json({ error: (err as Error).message }, { status: err instanceof LoaderTimeoutError ? 504 : 502 });
      }
    }
    if (url.pathname === "/upstream-calls") return Response.json({ upstreamCalls });
    const key = url.pathname.match(/^\/kv\/(.+)$/);
    if (key) {
      const k = decodeURIComponent(key[1]!);
      if (request.method === "PUT") return Response.json({ ok: await cache.set(k, await request.json(), { ttlSeconds: 300 }) });
      const value = await cache.get(k);
      return Response.json({ found: value !== undefined, value: value ?? null, cache: cache.stats() });
    }
    return new Response("try /quote/AAPL, /kv/<key>, /upstream-calls\n", { status: 404 });
  },
} satisfies ExportedHandler<Env>;
