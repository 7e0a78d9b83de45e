import type { MockAgent } from "undici";
import { describe, expect, it } from "vitest";
import { ENTRIES_KEY } from "../../protocol/index.js";
import { ADMIN_KEY, CF_TOKEN, KV_PATH, cli, expectNoSecrets, json, mockAgent, target, tempDir } from "./harness.js";

type Scenario = [name: string, argv: string[], setup: (agent: MockAgent) => void, message: RegExp];

const stats = (agent: MockAgent) => agent.get("http://worker.test").intercept({ path: "/api/v1/cache/stats", method: "GET" });
const kvGet = (agent: MockAgent) => agent.get("http://cf.test").intercept({ path: `${KV_PATH}/values/${ENTRIES_KEY}`, method: "GET" });
const envelopeError = (code: string, message: string) => ({ success: false, error: { code, message } });

const scenarios: Scenario[] = [
  ["a worker that is down", ["stats"], (a) => stats(a).replyWithError(Object.assign(new Error("connect ECONNREFUSED"), { code: "ECONNREFUSED" })), /^error: cannot reach http:\/\/worker\.test: connection refused$/m],
  ["a worker that hangs", ["--timeout", "50", "stats"], (a) => stats(a).reply(200, {}).delay(1000), /^error: GET http:\/\/worker\.test\/api\/v1\/cache\/stats timed out after 50 ms$/m],
  ["HTML instead of JSON", ["stats"], (a) => stats(a).reply(502, "<html>Bad gateway</html>", { headers: { "content-type": "text/html" } }).times(4), /not a tftcache JSON envelope/],
  ["401", ["stats"], (a) => stats(a).reply(401, envelopeError("unauthorized", "API key refused"), json), /refused the API key \(401 unauthorized\)/],
  ["403 from something in front", ["stats"], (a) => stats(a).reply(403, envelopeError("forbidden", "blocked by policy"), json), /forbidden \(403\): blocked by policy/],
  ["429 that never clears", ["stats"], (a) => stats(a).reply(429, envelopeError("rate_limited", "slow down"), { headers: { "content-type": "application/json", "retry-after": "1" } }).times(4), /rate limited by the Worker \(429\)/],
  ["429 from the Worker's failed-auth throttle", ["stats"], (a) => stats(a).reply(429, envelopeError("rate_limited", "too many failed authentication attempts from this client; retry after 60 s"), { headers: { "content-type": "application/json", "retry-after": "600" } }), /^error: too many failed authentication attempts; retry after 600 s \(429 rate_limited\)$/m],
  ["500", ["stats"], (a) => stats(a).reply(500, envelopeError("internal_error", "internal error; see the Worker's logs"), json).times(4), /internal error; see the Worker's logs \(HTTP 500 internal_error\)/],
  ["admin API disabled", ["stats"], (a) => stats(a).reply(503, envelopeError("admin_disabled", "the admin API is disabled: ADMIN_API_KEY is not set on this Worker"), json).times(4), /ADMIN_API_KEY is not set/],
  ["Cloudflare success:false with several errors", ["get", "k", "--from", "kv"], (a) => kvGet(a).reply(400, { success: false, errors: [{ code: 10001, message: "bad thing" }, { code: 10002, message: "worse thing" }], messages: [], result: null }), /\[10001\] bad thing; \[10002\] worse thing/],
  ["Cloudflare 429 that never clears", ["get", "k", "--from", "kv"], (a) => kvGet(a).reply(429, { success: false, errors: [{ code: 971, message: "Please wait and consider throttling your request speed" }], messages: [], result: null }, { headers: { "retry-after": "2" } }).times(4), /\[971\] Please wait/],
  ["a truncated Cloudflare body", ["get", "k", "--from", "kv"], (a) => kvGet(a).reply(500, '{"success":false,"err').times(4), /HTTP 500 with an unreadable body/],
];

describe("CLI failure modes: exit 2, one clear line (and a hint), no stack trace, no secret", () => {
  it.each(scenarios)("%s", async (_, argv, setup, message) => {
    const agent = mockAgent();
    setup(agent);
    const r = await cli([...target, ...argv], { agent });
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    const lines = r.stderr.trim().split("\n");
    expect(lines[0]).toMatch(/^error: /);
    expect(r.stderr).toMatch(message);
    expect(lines.length).toBeLessThanOrEqual(2);
    if (lines[1]) expect(lines[1]).toMatch(/^hint: /);
    expect(r.stderr).not.toMatch(/\n\s+at /);
    expectNoSecrets(r);
  });

  it("--verbose adds the cause's stack trace, still without secrets", async () => {
    const agent = mockAgent();
    stats(agent).replyWithError(Object.assign(new Error(`ECONNRESET while sending key ${ADMIN_KEY} token ${CF_TOKEN}`), { code: "ECONNRESET" })).times(4);
    const r = await cli([...target, "--verbose", "stats"], { agent });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/retrying \(ECONNRESET\), attempt 1/);
    expect(r.stderr).toMatch(/\n\s+at /);
    expectNoSecrets(r);
  });

  it("a failed-auth 429 is retried only as Retry-After says (no spin), then reported as too many attempts", async () => {
    const agent = mockAgent();
    stats(agent).reply(429, envelopeError("rate_limited", "too many failed authentication attempts from this client; retry after 30 s"), { headers: { "content-type": "application/json", "retry-after": "30" } }).times(4);
    const r = await cli([...target, "stats"], { agent });
    expect(r.code).toBe(2);
    expect(r.sleeps).toEqual([30_000, 30_000, 30_000]);
    expect(r.stderr).toMatch(/^error: too many failed authentication attempts; retry after 30 s \(429 rate_limited\)$/m);
    expect(r.stderr).toMatch(/^hint: .*check --api-key \/ TFTCACHE_API_KEY/m);
    // A wait that long is said, not silent, even without --verbose.
    expect(r.stderr).toMatch(/^HTTP 429: waiting 30 s as the server asked \(Retry-After\), then retrying \(attempt 1\)$/m);
    expectNoSecrets(r);
  });

  it("a seed file with a bad line names the line", async () => {
    const dir = tempDir({ "x.ndjson": '{"key":"a","value":1}\n{"key":"b","value":2}\n{"key":"c", value: 3}\n' });
    const r = await cli([...target, "seed", "x.ndjson", "--dry-run"], { cwd: dir, agent: mockAgent() });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/rejected line 3: not valid JSON/);
  });

  it("a seed file that does not exist", async () => {
    const r = await cli([...target, "seed", "nope.json"], { agent: mockAgent() });
    expect(r.code).toBe(2);
    expect(r.stderr.trim()).toBe("error: cannot read nope.json: no such file");
  });

  it("bad flag values are usage errors", async () => {
    for (const argv of [["--timeout", "soon", "stats"], ["list", "--limit", "0"], ["verify-kv", "--max-lag-seconds", "-1"], ["seed", "-", "--batch", "20000"], ["get", "k", "--from", "disk"]]) {
      const r = await cli([...target, ...argv], { agent: mockAgent(), stdin: "[]" });
      expect(r.code, argv.join(" ")).toBe(2);
      expect(r.stderr, argv.join(" ")).toMatch(/^error: /);
    }
  });
});
