import { describe, expect, it } from "vitest";
import { ENTRIES_KEY } from "../../protocol/index.js";
import { ACCOUNT, ADMIN_KEY, CF, CF_TOKEN, KV_PATH, NS, WORKER, cli, expectNoSecrets, json, mockAgent, ok, target, tempDir } from "./harness.js";
import { liveStats, snapshot } from "./fixtures.js";

const statsAgent = (headers?: Record<string, string>) => {
  const agent = mockAgent();
  agent.get(WORKER).intercept({ path: "/api/v1/cache/stats", method: "GET", ...(headers ? { headers } : {}) }).reply(200, ok(liveStats(1)), json).persist();
  return agent;
};

describe("numeric flags are bounded: a clear usage error (exit 2), never an overflow or a request storm", () => {
  it.each([
    [["--timeout", "2147483648", "stats"], /^error: --timeout must be a whole number of milliseconds from 1 to 600,000 \(got "2147483648"\)$/m],
    [["--timeout", "0", "stats"], /--timeout must be a whole number of milliseconds from 1 to 600,000/],
    [["--timeout", "1.5", "stats"], /--timeout must be a whole number of milliseconds/],
    [["--timeout", "1e3", "stats"], /--timeout must be a whole number/],
    [["stats", "--watch", "0.00001"], /^error: --watch must be a number of seconds from 0\.5 to 86,400 \(got "0\.00001"\)$/m],
    [["stats", "--watch", "NaN"], /--watch must be a number of seconds from 0\.5/],
    [["stats", "--watch", "1e9"], /--watch must be a number of seconds/],
    [["list", "--limit", "NaN"], /^error: --limit must be a whole number of keys from 1 to 1,000,000 \(got "NaN"\)$/m],
    [["list", "--limit", "-5"], /--limit must be a whole number of keys/],
    [["list", "--limit", "1e400"], /--limit must be a whole number of keys/],
    [["list", "--limit", "99999999999999999999"], /--limit must be a whole number of keys from 1 to 1,000,000/],
    [["seed", "-", "--batch", "1.5"], /^error: --batch must be a whole number of entries from 1 to 10,000 \(got "1\.5"\)$/m],
    [["seed", "-", "--batch", "0x10"], /--batch must be a whole number of entries/],
    [["seed", "-", "--ttl", "0"], /^error: --ttl must be a number of seconds from 0\.001 to 315,360,000 \(got "0"\)$/m],
    [["seed", "-", "--ttl", "Infinity"], /--ttl must be a number of seconds/],
    [["seed", "-", "--ttl", "-1"], /--ttl must be a number of seconds/],
    [["verify-kv", "--max-lag-seconds", "Infinity"], /^error: --max-lag-seconds must be a number of seconds from 0 to 86,400 \(got "Infinity"\)$/m],
    [["verify-kv", "--max-lag-seconds", "-0.5"], /--max-lag-seconds must be a number of seconds/],
  ])("%j", async (argv, message) => {
    // A stats mock that answers forever: the pre-fix CLI would poll it (--watch) or time out, not fail fast.
    const lines = (s: string) => s.trim().split("\n").filter(Boolean).length;
    const r = await cli([...target, ...argv], { agent: statsAgent(), stdin: '[{"key":"a","value":1}]', interruptWhen: ({ stdout }) => lines(stdout) >= 3 });
    expect(r.stderr).toMatch(message);
    expect(r.code).toBe(2);
    expect(r.stdout).toBe("");
    expect(r.stderr).not.toMatch(/TimeoutOverflowWarning/);
  });

  it("accepts the bounds themselves", async () => {
    expect((await cli([...target, "--timeout", "600000", "stats"], { agent: statsAgent() })).code).toBe(0);
    expect((await cli([...target, "--timeout", "1", "--json", "stats"], { agent: statsAgent() })).stderr).not.toMatch(/must be/);
    const r = await cli([...target, "stats", "--watch", "0.5"], { agent: statsAgent(), interruptWhen: ({ stdout }) => stdout.trim().split("\n").length >= 3 });
    expect(r.code).toBe(130);
    expect(r.sleeps).toEqual([500]);
  });

  it("bounds a config file's timeout too", async () => {
    const dir = tempDir({ "tftcache.config.json": JSON.stringify({ timeout: 2 ** 31 }) });
    const r = await cli([...target, "stats"], { agent: statsAgent(), cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/"timeout" in .*tftcache\.config\.json must be a whole number of milliseconds from 1 to 600,000/);
  });
});

describe("secrets with surrounding whitespace are trimmed (and said so); a secret no header can carry is a usage error", () => {
  const env = (extra: NodeJS.ProcessEnv) => ({ TFTCACHE_URL: WORKER, ...extra });

  it("an API key with a trailing newline, as $(cat key.txt) gives, is sent trimmed, with one note", async () => {
    const r = await cli(["stats"], { agent: statsAgent({ "x-api-key": ADMIN_KEY }), env: env({ TFTCACHE_API_KEY: `${ADMIN_KEY}\n` }) });
    expect(r.code).toBe(0);
    expect(r.stderr).toBe("note: removed surrounding whitespace from the API key (TFTCACHE_API_KEY)\n");
    expectNoSecrets(r);
  });

  it("the same for --api-key, a config file's apiKey, and the Cloudflare token", async () => {
    const flag = await cli(["--url", WORKER, "--api-key", `  ${ADMIN_KEY}\r\n`, "stats"], { agent: statsAgent({ "x-api-key": ADMIN_KEY }) });
    expect(flag.code).toBe(0);
    expect(flag.stderr).toBe("note: removed surrounding whitespace from the API key (--api-key)\n");
    const dir = tempDir({ "tftcache.config.json": JSON.stringify({ url: WORKER, apiKey: `${ADMIN_KEY}\n` }) });
    const file = await cli(["stats"], { agent: statsAgent({ "x-api-key": ADMIN_KEY }), cwd: dir });
    expect(file.code).toBe(0);
    expect(file.stderr).toMatch(/^note: removed surrounding whitespace from the API key \("apiKey" in .*tftcache\.config\.json\)\n$/);

    const agent = mockAgent();
    agent.get("http://cf.test").intercept({ path: `${KV_PATH}/values/${ENTRIES_KEY}`, method: "GET", headers: { authorization: `Bearer ${CF_TOKEN}` } }).reply(200, JSON.stringify(await snapshot(1, { k: 1 })));
    const token = await cli(["--json", "get", "k", "--from", "kv"], { agent, env: { CLOUDFLARE_ACCOUNT_ID: ACCOUNT, TFTCACHE_KV_NAMESPACE_ID: NS, CLOUDFLARE_API_BASE_URL: CF, CLOUDFLARE_API_TOKEN: `\t${CF_TOKEN}\n` } });
    expect(token.code).toBe(0);
    expect(token.stderr).toBe("note: removed surrounding whitespace from the Cloudflare API token (CLOUDFLARE_API_TOKEN)\n");
    expectNoSecrets(token);
  });

  it.each([
    ["an inner newline", `${ADMIN_KEY.slice(0, 8)}\n${ADMIN_KEY.slice(8)}`, "a line break"],
    ["a control character", `${ADMIN_KEY}\u0001x`, "a control character"],
    ["a character outside Latin-1", `${ADMIN_KEY}→`, "a character outside Latin-1"],
  ])("a key with %s: exit 2, said to be a bad header value, never 'cannot reach', never printed", async (_, key, what) => {
    // No interceptor: had the CLI sent anything, MockAgent would have refused the connection.
    const r = await cli(["--url", "http://127.0.0.1:8787", "stats"], { agent: mockAgent(), env: { TFTCACHE_API_KEY: key } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(new RegExp(`^error: the API key \\(TFTCACHE_API_KEY\\) contains characters not allowed in an HTTP header \\(${what} at position \\d+ of \\d+\\)$`, "m"));
    expect(r.stderr).not.toMatch(/cannot reach|local stack running/);
    for (const part of key.split(/[\n\u0001→]/).filter(Boolean)) expect(r.stderr + r.stdout).not.toContain(part);
  });

  it("a token with an inner line break fails the same way, and doctor reports it as a failed check", async () => {
    const bad = `${CF_TOKEN}\nX-Evil: 1`;
    const get = await cli(["--url", WORKER, "--api-key", ADMIN_KEY, "--account-id", ACCOUNT, "--namespace-id", NS, "--cf-api-base", CF, "get", "k", "--from", "kv"], { agent: mockAgent(), env: { CLOUDFLARE_API_TOKEN: bad } });
    expect(get.code).toBe(2);
    expect(get.stderr).toMatch(/^error: the Cloudflare API token \(CLOUDFLARE_API_TOKEN\) contains characters not allowed in an HTTP header/m);
    expect(get.stderr).not.toContain(CF_TOKEN);

    const agent = mockAgent();
    agent.get(WORKER).intercept({ path: "/health", method: "GET" }).reply(200, ok({ status: "ok", version: "0.1.0" }), json);
    const doctor = await cli(["--url", WORKER, "--json", "doctor"], { agent, env: { TFTCACHE_API_KEY: `${ADMIN_KEY}\n\u0000` } });
    expect(doctor.code).toBe(2);
    const admin = JSON.parse(doctor.stdout).checks.find((c: { name: string }) => c.name === "admin key");
    expect(admin).toMatchObject({ verdict: "fail", detail: expect.stringMatching(/contains characters not allowed in an HTTP header/) });
    expect(doctor.stdout + doctor.stderr).not.toContain(ADMIN_KEY);
  });

  it("a key that is only whitespace counts as unset", async () => {
    const r = await cli(["stats"], { env: env({ TFTCACHE_API_KEY: " \n" }) });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/note: ignored the API key from TFTCACHE_API_KEY: it is only whitespace/);
    expect(r.stderr).toMatch(/the admin API needs --api-key or TFTCACHE_API_KEY/);
  });
});
