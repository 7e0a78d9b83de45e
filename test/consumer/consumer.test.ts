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

  it("stale-if-error: with the vendor failing, and then hanging, the expired quote is served instead of an error", async () => {
    const first = await consumer("/quote/IBM?ttl=1&swr=0&sie=300");
    const hungFirst = await consumer("/quote/MSFT?ttl=1&swr=0&sie=300");
    // Wait until both have expired (a plain get misses), however long the machine takes.
    await vi.waitFor(async () => {
      expect((await consumer(`/kv/${encodeURIComponent("quote:IBM")}`)).found).toBe(false);
      expect((await consumer(`/kv/${encodeURIComponent("quote:MSFT")}`)).found).toBe(false);
    }, { timeout: 20_000, interval: 100 });
    const failing = await consumer("/quote/IBM?ttl=1&swr=0&sie=300&outage=error");
    expect(failing.quote).toEqual(first.quote);
    expect(failing.cache).toMatchObject({ stale: 1 });
    const hung = await consumer("/quote/MSFT?ttl=1&swr=0&sie=300&outage=hang&timeout=200");
    expect(hung.quote).toEqual(hungFirst.quote);
    // Without stale-if-error the vendor's failure is the answer.
    const res = await bindings.CONSUMER.fetch("http://consumer/quote/IBM?ttl=1&swr=0&sie=0&outage=error");
    expect(res.status).toBe(502);
    expect(((await res.json()) as { error: string }).error).toMatch(/503/);
  });

  it("negative caching: an unknown symbol is looked up once, then answered 'not found' from the cache", async () => {
    const before = (await consumer("/upstream-calls")).directoryCalls as number;
    const a = await bindings.CONSUMER.fetch("http://consumer/symbol/NOSUCH");
    const b = await bindings.CONSUMER.fetch("http://consumer/symbol/NOSUCH");
    expect([a.status, b.status]).toEqual([404, 404]);
    expect(((await b.json()) as { cache: { hits: number } }).cache.hits).toBe(1);
    expect((await consumer("/symbol/AAPL")).info).toEqual({ symbol: "AAPL", listed: true });
    expect((await consumer("/upstream-calls")).directoryCalls).toBe(before + 2);
  });

  it("deletePrefix: hard deletes a desk's positions; soft serves a quote once more while it refreshes", async () => {
    for (const k of ["desk-9:a", "desk-9:b", "desk-10:a"]) await consumer(`/kv/${k}`, { method: "PUT", body: JSON.stringify({ qty: 1 }) });
    expect(await consumer("/invalidate?prefix=desk-9%3A&mode=hard", { method: "POST" })).toEqual({ prefix: "desk-9:", mode: "hard", count: 2 });
    expect((await consumer("/kv/desk-9:a")).found).toBe(false);
    expect((await consumer("/kv/desk-10:a")).found).toBe(true);
    const fresh = await consumer("/quote/NVDA?ttl=300");
    expect(await consumer("/invalidate?prefix=quote%3ANVDA&mode=soft", { method: "POST" })).toMatchObject({ mode: "soft", count: 1 });
    const stale = await consumer("/quote/NVDA?ttl=300");
    expect(stale.quote).toEqual(fresh.quote);
    expect(stale.cache.stale).toBe(1);
    await vi.waitFor(async () => expect((await consumer("/quote/NVDA?ttl=300")).quote.at).toBeGreaterThan(fresh.quote.at), { timeout: 20_000, interval: 50 });
  });

  it("TTL jitter: a batch written together expires over a spread, never later than its TTL", async () => {
    const t = Date.now();
    expect(await consumer("/batch?n=20", { method: "POST" })).toEqual({ written: 20 });
    const listed = (await admin(`/api/v1/cache/entries?prefix=${encodeURIComponent("batch:")}`)).data.keys as Array<{ expiresAt: number }>;
    expect(listed).toHaveLength(20);
    for (const { expiresAt } of listed) {
      expect(expiresAt).toBeGreaterThan(t + 240_000 - 1_000);
      expect(expiresAt).toBeLessThanOrEqual(Date.now() + 300_000);
    }
    expect(new Set(listed.map((k) => k.expiresAt)).size).toBeGreaterThan(1);
  });

  it("provenance: /lookup says where a value came from and how old it is; maxStalenessMs refuses an older one", async () => {
    await consumer(`/kv/${encodeURIComponent("prov:q")}`, { method: "PUT", body: JSON.stringify({ px: 1 }) });
    const seen = await consumer(`/lookup/${encodeURIComponent("prov:q")}`);
    expect(seen).toMatchObject({ key: "prov:q", found: true, value: { px: 1 }, stale: false, source: expect.stringMatching(/^(memory|do)$/) });
    expect(seen.ageMs).toBeGreaterThanOrEqual(0);
    expect(seen.generation).toBeGreaterThan(0);
    expect(await consumer(`/lookup/${encodeURIComponent("prov:q")}?maxStalenessMs=600000`)).toMatchObject({ found: true, value: { px: 1 } });
    // Once the value is older than 0 ms (at the next millisecond, however long the machine takes), it is refused.
    await vi.waitFor(async () => {
      const res = await bindings.CONSUMER.fetch(`http://consumer/lookup/${encodeURIComponent("prov:q")}?maxStalenessMs=0`);
      expect(res.status).toBe(404);
      expect(await res.json()).toMatchObject({ found: false, tooOld: true });
    }, { timeout: 20_000, interval: 20 });
    expect((await bindings.CONSUMER.fetch("http://consumer/lookup/prov%3Aq?maxStalenessMs=-1")).status).toBe(400);
  });

  it("refuses bad query parameters with 400 instead of guessing: a mode other than hard/soft, a non-numeric ttl or timeout", async () => {
    for (const k of ["desk-11:a", "desk-11:b"]) await consumer(`/kv/${k}`, { method: "PUT", body: JSON.stringify({ qty: 1 }) });
    for (const mode of ["Soft", "gentle", ""]) {
      const res = await bindings.CONSUMER.fetch(`http://consumer/invalidate?prefix=desk-11%3A&mode=${mode}`, { method: "POST" });
      expect(res.status, mode).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/mode must be hard/);
    }
    expect((await bindings.CONSUMER.fetch("http://consumer/invalidate?prefix=desk-11%3A&mode=hard&mode=soft", { method: "POST" })).status).toBe(400);
    expect((await consumer("/kv/desk-11:a")).found).toBe(true); // nothing was purged
    const before = await upstreamCalls();
    for (const query of ["ttl=abc", "ttl=0", "ttl=-5", "timeout=abc", "timeout=1.5", "timeout=0", "swr=x", "sie=1e3", "ttl=5&ttl=6"]) {
      const res = await bindings.CONSUMER.fetch(`http://consumer/quote/AMD?${query}`);
      expect(res.status, query).toBe(400);
      expect(((await res.json()) as { error: string }).error).toMatch(/must be|more than once/);
    }
    expect(await upstreamCalls()).toBe(before); // refused before the vendor was called
    expect((await bindings.CONSUMER.fetch("http://consumer/batch?n=abc", { method: "POST" })).status).toBe(400);
    expect((await bindings.CONSUMER.fetch("http://consumer/kv/%E0%A4%A", { method: "GET" })).status).toBe(400);
    expect(await consumer("/invalidate?prefix=desk-11%3A&mode=soft", { method: "POST" })).toMatchObject({ mode: "soft", count: 2 });
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
