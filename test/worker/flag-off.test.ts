import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { ENTRIES_KEY } from "../../protocol/index.js";
import { handleRequest } from "../../worker/index.js";
import { ADMIN_KEY, BASE, entryPath, freshState, randomAddress } from "./helpers.js";
import { writeKvSnapshot } from "./kv-fixtures.js";

beforeEach(freshState);

/** The admin API of a Worker deployed with FEATURE_FLAG_DO_CACHE=false: reads come from the KV snapshot. */
async function flagOffGet(path: string): Promise<{ status: number; text: string; body: any }> {
  const headers = { "x-api-key": ADMIN_KEY, "cf-connecting-ip": randomAddress() };
  const res = await handleRequest(new Request(`${BASE}${path}`, { headers }), { ...env, FEATURE_FLAG_DO_CACHE: "false" });
  const text = await res.text();
  return { status: res.status, text, body: JSON.parse(text) };
}

describe("FEATURE_FLAG_DO_CACHE=false: admin reads from the KV snapshot (issue 11 item 8)", () => {
  it("GET /entries/:key serves an intact snapshot's entry, source kv", async () => {
    await writeKvSnapshot(3, { "quote:AAPL": { bid: 5 } });
    const r = await flagOffGet(entryPath("quote:AAPL"));
    expect(r.status).toBe(200);
    expect(r.body.data).toMatchObject({ key: "quote:AAPL", value: { bid: 5 }, source: "kv" });
  });

  it("GET /entries/:key never serves a torn snapshot (digest does not match its entries): 404 saying why", async () => {
    const snap = await writeKvSnapshot(3, { "quote:AAPL": { bid: 5 }, "quote:MSFT": { bid: 6 } });
    // A value changed after the digest was computed: the snapshot no longer hashes to what it claims.
    snap.entries[0]![1].value = { bid: 999_999 };
    await env.CACHE_DO_KV.put(ENTRIES_KEY, JSON.stringify(snap));
    for (const key of ["quote:AAPL", "quote:MSFT"]) {
      const r = await flagOffGet(entryPath(key));
      expect(r.status).toBe(404);
      expect(r.body).toMatchObject({ success: false, error: { code: "not_found" } });
      expect(r.body.error.message).toMatch(/digest mismatch/);
      expect(r.text).not.toMatch(/999999|"bid"/);
    }
    const whole = await flagOffGet("/api/v1/cache/snapshot");
    expect(whole.status).toBe(404);
    expect(whole.text).not.toMatch(/999999/);
  });
});
