import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { tftcache, tftcacheAsync } from "./stack-harness.js";
import { startWranglerDev, type WranglerDev } from "./wrangler-dev.js";

let dev: WranglerDev;

beforeAll(async () => {
  dev = await startWranglerDev({ apiKey: "wrangler-dev-e2e-key-0123456789" });
}, 120_000);

afterAll(async () => {
  await dev?.stop();
}, 30_000);

const BODY_100K = JSON.stringify({ value: "x".repeat(100 * 1024) });
const call = (path: string, init: RequestInit & { key?: string | null } = {}) => {
  const headers = new Headers(init.headers);
  const key = init.key === undefined ? dev.apiKey : init.key;
  if (key !== null) headers.set("x-api-key", key);
  return fetch(`${dev.url}${path}`, { ...init, headers });
};

describe("under wrangler dev (a proxy in front of workerd)", () => {
  it("a request refused before its body is read does not break the next request on the connection", async () => {
    // Each refusal sends a 100 KB body the Worker never needs; a valid 100 KB PUT follows on the same keep-alive
    // connection. Cancelling the unread body made 23–29 of 30 such PUTs fail with 503 here.
    const refusals: Array<[string, () => Promise<Response>, number]> = [
      ["a 600-byte key", () => call(`/api/v1/cache/entries/${"k".repeat(600)}`, { method: "PUT", body: BODY_100K }), 400],
      ["no API key", () => call("/api/v1/cache/entries/k", { method: "PUT", body: BODY_100K, key: null }), 401],
      ["an unknown path", () => call("/nope", { method: "POST", body: BODY_100K }), 404],
      ["a body on POST /flush", () => call("/api/v1/cache/flush", { method: "POST", body: BODY_100K }), 200],
      ["a body over 10 MiB", () => call("/api/v1/cache/seed", { method: "POST", body: "x".repeat(10 * 1024 * 1024 + 1) }), 413],
    ];
    const failures: string[] = [];
    for (let round = 0; round < 30; round++) {
      const [what, refuse, status] = refusals[round % refusals.length]!;
      const refused = await refuse();
      await refused.arrayBuffer();
      if (refused.status !== status) failures.push(`round ${round} ${what}: ${refused.status}, expected ${status}`);
      const valid = await call(`/api/v1/cache/entries/valid-${round}`, { method: "PUT", body: BODY_100K, headers: { "content-type": "application/json" } });
      const text = await valid.text();
      if (valid.status !== 200) failures.push(`round ${round} after ${what}: valid PUT got ${valid.status} ${text.slice(0, 120)}`);
    }
    expect(failures).toEqual([]);
  }, 120_000);

  it("the CLI works against it: seed, get, flush, stats", async () => {
    const env = { PATH: process.env.PATH, NO_COLOR: "1", TFTCACHE_URL: dev.url, TFTCACHE_API_KEY: dev.apiKey };
    const seeding = tftcacheAsync(["seed", "-"], { env });
    seeding.child.stdin.end('{"key":"quote:AAPL","value":{"bid":1}}\n{"key":"quote:MSFT","value":{"bid":2}}\n');
    const seed = await seeding.done;
    expect(seed.stderr + seed.stdout).toMatch(/2/);
    expect(seed.code).toBe(0);
    const got = await tftcache(["--json", "get", "quote:MSFT"], { env });
    expect(got.code).toBe(0);
    expect(JSON.parse(got.stdout)).toMatchObject({ key: "quote:MSFT", value: { bid: 2 } });
    const flushed = await tftcache(["--json", "flush"], { env });
    expect(flushed.code).toBe(0);
    expect(JSON.parse(flushed.stdout)).toMatchObject({ written: true });
    const stats = await tftcache(["--json", "stats"], { env });
    expect(stats.code).toBe(0);
    expect(JSON.parse(stats.stdout).kv.writesToday).toBeGreaterThanOrEqual(2);
  }, 60_000);

  // Last: it blocks this client (every local client shares one address) for the limiter's period.
  it("wrong keys are rate limited by the AUTH_RATE_LIMITER binding declared in wrangler.toml: 429 with Retry-After", async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      const res = await call("/api/v1/cache/stats", { key: `guess-${i}` });
      statuses.push(res.status);
      if (res.status === 429) expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
      await res.arrayBuffer();
    }
    expect(statuses.slice(0, 10).every((s) => s === 401)).toBe(true);
    expect(statuses.slice(10)).toEqual([429, 429]);
    expect((await call("/api/v1/cache/stats")).status).toBe(429); // even the right key, until the period ends
  }, 60_000);
});
