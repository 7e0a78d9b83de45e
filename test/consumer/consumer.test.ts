import { env } from "cloudflare:workers";
import { describe, expect, it, vi } from "vitest";

/** The auxiliary Workers this project starts: the example consumer, and tftcache's own fetch (admin API). */
const bindings = env as unknown as { CONSUMER: Fetcher; CACHE_ADMIN: Fetcher; ADMIN_API_KEY: string };
const consumer = async (path: string, init?: RequestInit) => (await bindings.CONSUMER.fetch(`http://consumer${path}`, init)).json() as Promise<any>;
const upstreamCalls = async () => (await consumer("/upstream-calls")).upstreamCalls as number;
const admin = async (path: string) =>
  (await bindings.CACHE_ADMIN.fetch(`http://tftcache${path}`, { headers: { "x-api-key": bindings.ADMIN_API_KEY } })).json() as Promise<any>;

describe("examples/consumer → service binding → tftcache CacheService", () => {
  it("caches a quote: the second request does not reach the market-data API", async () => {
    const before = await upstreamCalls();
    const first = await consumer("/quote/AAPL");
    const second = await consumer("/quote/AAPL");
    expect(second.quote).toEqual(first.quote);
    expect(await upstreamCalls()).toBe(before + 1);
    expect(second.cache).toMatchObject({ hits: 1, misses: 0 });
  });

  it("50 concurrent misses on one key call the loader exactly once", async () => {
    const before = await upstreamCalls();
    const answers = await Promise.all(Array.from({ length: 50 }, () => consumer("/quote/NVDA")));
    expect(new Set(answers.map((a) => JSON.stringify(a.quote))).size).toBe(1);
    expect(await upstreamCalls()).toBe(before + 1);
  });

  it("stale-while-revalidate: an expired quote is served once more while it refreshes", async () => {
    const fresh = await consumer("/quote/TSLA?ttl=1&swr=60");
    await new Promise((r) => setTimeout(r, 1100));
    const stale = await consumer("/quote/TSLA?ttl=1&swr=60");
    expect(stale.quote).toEqual(fresh.quote);
    expect(stale.cache.stale).toBe(1);
    // The refresh runs in the consumer's waitUntil: wait for it to land, however long the machine takes.
    await vi.waitFor(async () => expect((await consumer("/quote/TSLA?ttl=60&swr=60")).quote.at).toBeGreaterThan(fresh.quote.at), { timeout: 20_000, interval: 50 });
  });

  it("values set through the client are what tftcache's admin API returns", async () => {
    const put = await consumer("/kv/pos:desk-7", { method: "PUT", body: JSON.stringify({ qty: 300, px: 12.5 }) });
    expect(put.ok).toBe(true);
    const viaAdmin = await admin(`/api/v1/cache/entries/${encodeURIComponent("pos:desk-7")}`);
    expect(viaAdmin.data.value).toEqual({ qty: 300, px: 12.5 });
    const viaClient = await consumer("/kv/pos:desk-7");
    expect(viaClient).toMatchObject({ found: true, value: { qty: 300, px: 12.5 } });
  });
});
