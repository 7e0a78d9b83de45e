import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { handleRequest } from "../../worker/index.js";
import { ADMIN_KEY, api, apiJson, freshState, randomAddress } from "./helpers.js";

beforeEach(freshState);

const from = (address: string, key: string | null) => api("/api/v1/cache/stats", { key, headers: { "cf-connecting-ip": address } });

describe("failed authentication is rate limited (AUTH_RATE_LIMITER, 10 per 60 s per client)", () => {
  it("answers 429 with Retry-After after 10 wrong keys, then refuses even the right key from that client", async () => {
    expect(env.AUTH_RATE_LIMITER, "wrangler.toml declares the binding").toBeDefined();
    const guesser = randomAddress();
    const statuses: number[] = [];
    for (let i = 0; i < 15; i++) statuses.push((await from(guesser, `guess-${i}`)).status);
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses.slice(10)).toEqual(Array(5).fill(429));
    const blocked = await from(guesser, ADMIN_KEY);
    expect(blocked.status).toBe(429); // a guesser cannot tell the right key from the 429s
    expect(Number(blocked.headers.get("retry-after"))).toBeGreaterThan(0);
    const body = (await blocked.json()) as any;
    expect(body).toMatchObject({ success: false, error: { code: "rate_limited" } });
    expect(body.error.message).toMatch(/too many failed authentication attempts/);
    // Another client is not affected.
    expect((await from(randomAddress(), ADMIN_KEY)).status).toBe(200);
  });

  it("does not count requests without a key, nor successful ones", async () => {
    const client = randomAddress();
    for (let i = 0; i < 15; i++) expect((await from(client, null)).status).toBe(401);
    for (let i = 0; i < 15; i++) expect((await from(client, ADMIN_KEY)).status).toBe(200);
    expect((await from(client, "wrong")).status).toBe(401);
  });
});

describe("weak admin key", () => {
  it("logs a config problem once when ADMIN_API_KEY is shorter than 16 characters, and still works", async () => {
    const warn = vi.spyOn(console, "warn").mockImplementation(() => {});
    try {
      const weak = { ...env, ADMIN_API_KEY: "k7" };
      const req = () => handleRequest(new Request("https://t/api/v1/cache/stats", { headers: { "x-api-key": "k7", "cf-connecting-ip": randomAddress() } }), weak);
      expect((await req()).status).toBe(200);
      expect((await req()).status).toBe(200);
      const lines = warn.mock.calls.map((c) => String(c[0])).filter((l) => l.includes("ADMIN_API_KEY is 2 characters"));
      expect(lines).toHaveLength(1);
      expect(JSON.parse(lines[0]!)).toMatchObject({ tag: "CACHE_DO_INIT", event: "config_problem" });
      expect(lines[0]).not.toContain('"k7"');
    } finally {
      warn.mockRestore();
    }
    expect((await apiJson("/api/v1/cache/stats")).status).toBe(200);
  });
});
