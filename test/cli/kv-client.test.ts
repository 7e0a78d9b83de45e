import { describe, expect, it } from "vitest";
import { CliError } from "../../cli/errors.js";
import { CloudflareApiError, KvRestClient } from "../../cli/http/kv-client.js";
import { parseRetryAfter } from "../../cli/http/send.js";
import { ACCOUNT, CF, CF_TOKEN, KV_PATH, NS, cli, mockAgent, target } from "./harness.js";

function client(agent = mockAgent(), extra: { timeoutMs?: number } = {}) {
  const sleeps: number[] = [];
  const kv = new KvRestClient(CF, ACCOUNT, NS, CF_TOKEN, {
    dispatcher: agent,
    timeoutMs: extra.timeoutMs ?? 2000,
    retries: 3,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  });
  return { kv, agent, pool: agent.get("http://cf.test"), sleeps };
}

const cfError = (code: number, message: string) => ({ success: false, errors: [{ code, message }], messages: [], result: null });

describe("Cloudflare KV REST client", () => {
  it("returns a raw value and sends the bearer token", async () => {
    const { kv, pool } = client();
    pool.intercept({ path: `${KV_PATH}/values/do_cache_entries`, method: "GET", headers: { authorization: `Bearer ${CF_TOKEN}` } }).reply(200, '{"raw":true}');
    expect(await kv.getValue("do_cache_entries")).toBe('{"raw":true}');
  });

  it("percent-encodes keys in the path", async () => {
    const { kv, pool } = client();
    pool.intercept({ path: `${KV_PATH}/values/a%2Fb%20c%3F`, method: "GET" }).reply(200, "v");
    expect(await kv.getValue("a/b c?")).toBe("v");
  });

  it("treats 404 with code 10009 as a missing key, not a failure", async () => {
    const { kv, pool } = client();
    pool.intercept({ path: `${KV_PATH}/values/absent`, method: "GET" }).reply(404, cfError(10009, "get: 'key not found'"));
    expect(await kv.getValue("absent")).toBeNull();
  });

  it("reports any other 404 (a wrong namespace) as an error with a hint", async () => {
    const { kv, pool } = client();
    pool.intercept({ path: `${KV_PATH}/values/k`, method: "GET" }).reply(404, cfError(10013, "namespace not found"));
    const err = await kv.getValue("k").catch((e) => e);
    expect(err).toBeInstanceOf(CloudflareApiError);
    expect(err.message).toBe("Cloudflare API GET k: [10013] namespace not found");
    expect(err.hint).toMatch(/--namespace-id/);
  });

  it("joins every error of a success:false envelope", async () => {
    const { kv, pool } = client();
    pool.intercept({ path: `${KV_PATH}/values/k`, method: "PUT" }).reply(400, { success: false, errors: [{ code: 10001, message: "first" }, { code: 10002, message: "second" }], messages: [], result: null });
    const err = await kv.putValue("k", "v").catch((e) => e);
    expect(err.message).toMatch(/\[10001\] first; \[10002\] second/);
    expect(err.codes).toEqual([10001, 10002]);
  });

  it("explains an authentication failure without echoing the token", async () => {
    const { kv, pool } = client();
    pool.intercept({ path: `${KV_PATH}/values/k`, method: "GET" }).reply(403, cfError(10000, "Authentication error"));
    const err = await kv.getValue("k").catch((e) => e);
    expect(err.hint).toMatch(/CLOUDFLARE_API_TOKEN/);
    expect(`${err.message} ${err.hint}`).not.toContain(CF_TOKEN);
  });

  it("follows cursors across pages of keys", async () => {
    const { kv, pool } = client();
    pool.intercept({ path: `${KV_PATH}/keys?limit=10&prefix=do_`, method: "GET" }).reply(200, { success: true, errors: [], messages: [], result: [{ name: "do_a" }, { name: "do_b" }], result_info: { count: 2, cursor: "c1" } });
    pool.intercept({ path: `${KV_PATH}/keys?limit=10&prefix=do_&cursor=c1`, method: "GET" }).reply(200, { success: true, errors: [], messages: [], result: [{ name: "do_c" }], result_info: { count: 1, cursor: "" } });
    expect((await kv.listKeys("do_", 10)).map((k) => k.name)).toEqual(["do_a", "do_b", "do_c"]);
  });

  it("returns metadata, tells a missing key (404/10009) from one written without metadata (null result)", async () => {
    const { kv, pool } = client();
    pool.intercept({ path: `${KV_PATH}/metadata/k`, method: "GET" }).reply(200, { success: true, errors: [], messages: [], result: { generation: 4 } });
    pool.intercept({ path: `${KV_PATH}/metadata/gone`, method: "GET" }).reply(404, cfError(10009, "key not found"));
    pool.intercept({ path: `${KV_PATH}/metadata/bare`, method: "GET" }).reply(200, { success: true, errors: [], messages: [], result: null });
    expect(await kv.getMetadata("k")).toEqual({ found: true, metadata: { generation: 4 } });
    expect(await kv.getMetadata("gone")).toEqual({ found: false });
    expect(await kv.getMetadata("bare")).toEqual({ found: true, metadata: null });
  });

  it("retries a 429, waiting as long as Retry-After says, then succeeds", async () => {
    const { kv, pool, sleeps } = client();
    pool.intercept({ path: `${KV_PATH}/values/k`, method: "GET" }).reply(429, cfError(10429, "Too many requests"), { headers: { "retry-after": "3" } });
    pool.intercept({ path: `${KV_PATH}/values/k`, method: "GET" }).reply(200, "value");
    expect(await kv.getValue("k")).toBe("value");
    expect(sleeps).toEqual([3000]);
  });

  it("gives up after the retries on repeated 5xx, with the last error", async () => {
    const { kv, pool, sleeps } = client();
    pool.intercept({ path: `${KV_PATH}/values/k`, method: "GET" }).reply(503, cfError(10503, "service unavailable")).times(4);
    const err = await kv.getValue("k").catch((e) => e);
    expect(err).toBeInstanceOf(CloudflareApiError);
    expect(err.message).toMatch(/10503/);
    expect(sleeps).toHaveLength(3);
    expect(sleeps[1]!).toBeGreaterThan(sleeps[0]!);
  });

  it("does not sleep through an absurd Retry-After", async () => {
    const { kv, pool, sleeps } = client();
    pool.intercept({ path: `${KV_PATH}/values/k`, method: "GET" }).reply(429, cfError(10429, "slow down"), { headers: { "retry-after": "3600" } });
    const err = await kv.getValue("k").catch((e) => e);
    expect(err.hint).toMatch(/rate-limited/);
    expect(sleeps).toEqual([]);
  });

  it("reports a truncated or non-JSON error body as unreadable", async () => {
    const { kv, pool } = client();
    pool.intercept({ path: `${KV_PATH}/values/k`, method: "PUT" }).reply(200, '{"success": tr');
    const err = await kv.putValue("k", "v").catch((e) => e);
    expect(err.message).toMatch(/unreadable body/);
  });

  it("times out a hung request with a message that names the timeout", async () => {
    const { kv, pool } = client(mockAgent(), { timeoutMs: 50 });
    pool.intercept({ path: `${KV_PATH}/values/k`, method: "GET" }).reply(200, "late").delay(500);
    const err = await kv.getValue("k").catch((e) => e);
    expect(err).toBeInstanceOf(CliError);
    expect(err.message).toMatch(/timed out after 50 ms/);
  });

  it("parses Retry-After as seconds or an HTTP date", () => {
    expect(parseRetryAfter("2")).toBe(2000);
    expect(parseRetryAfter(new Date(10_000).toUTCString(), 4_000)).toBe(6000);
    expect(parseRetryAfter("soon")).toBeNull();
    expect(parseRetryAfter(undefined)).toBeNull();
  });
});

describe("Cloudflare's own ways of failing", () => {
  it("treats 400 with 6003 (bad Authorization header) as an authentication failure and prints the error_chain", async () => {
    const { kv, pool } = client();
    pool.intercept({ path: `${KV_PATH}/values/k`, method: "GET" }).reply(400, { success: false, errors: [{ code: 6003, message: "Invalid request headers", error_chain: [{ code: 6111, message: "Invalid format for Authorization header" }] }], messages: [], result: null });
    const err = await kv.getValue("k").catch((e) => e);
    expect(err).toBeInstanceOf(CloudflareApiError);
    expect(err.message).toBe("Cloudflare API GET k: authentication failed: [6003] Invalid request headers (← [6111] Invalid format for Authorization header)");
    expect(err.hint).toMatch(/CLOUDFLARE_API_TOKEN/);
    expect(err.hint).toMatch(/Authorization: Bearer/);
    expect(err.codes).toEqual([6003]);
  });

  it("treats 400 with 9106 (no credentials at all) as an authentication failure too", async () => {
    const { kv, pool } = client();
    pool.intercept({ path: `${KV_PATH}/metadata/k`, method: "GET" }).reply(400, { success: false, errors: [{ code: 9106, message: "Missing X-Auth-Key, X-Auth-Email or Authorization headers" }], messages: [], result: null });
    const err = await kv.getMetadata("k").catch((e) => e);
    expect(err.message).toMatch(/^Cloudflare API metadata k: authentication failed: \[9106\] Missing X-Auth-Key/);
    expect(err.hint).toMatch(/--api-token/);
  });

  it("mentions the account id on 403/10000: a token for another account is refused the same way", async () => {
    const { kv, pool } = client();
    pool.intercept({ path: `${KV_PATH}/values/k`, method: "GET" }).reply(403, cfError(10000, "Authentication error"));
    const err = await kv.getValue("k").catch((e) => e);
    expect(err.hint).toMatch(new RegExp(`--account-id \\(${ACCOUNT}\\) is the account that owns the namespace`));
    expect(`${err.message} ${err.hint}`).not.toContain(CF_TOKEN);
  });

  it("recognises a challenge page (HTML 403, cf-mitigated: challenge) instead of calling it an unreadable body", async () => {
    const { kv, pool } = client();
    pool.intercept({ path: `${KV_PATH}/values/k`, method: "GET" }).reply(403, "<!DOCTYPE html><html><title>Just a moment...</title></html>", { headers: { "content-type": "text/html; charset=UTF-8", "cf-mitigated": "challenge" } });
    const err = await kv.getValue("k").catch((e) => e);
    expect(err.message).toMatch(/challenge page \(cf-mitigated: challenge\)/);
    expect(err.message).not.toMatch(/unreadable body/);
    expect(err.hint).toMatch(/not an authentication failure/);
  });

  it("the admin client recognises a challenge in front of the Worker too", async () => {
    const agent = mockAgent();
    agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(403, "<html>Just a moment...</html>", { headers: { "content-type": "text/html", "cf-mitigated": "challenge" } });
    const r = await cli([...target, "stats"], { agent });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/answered with a Cloudflare challenge page \(HTTP 403, cf-mitigated: challenge\)/);
    expect(r.stderr).toMatch(/WAF skip rule/);
  });

  it("refuses a key-listing limit Cloudflare would refuse (10 to 1000), before sending anything", async () => {
    const { kv } = client();
    for (const bad of [0, 9, 1001, 2.5]) await expect(kv.listKeys("", bad)).rejects.toThrow(/limit must be a whole number from 10 to 1000/);
  });
});
