import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ENTRIES_KEY, STATS_KEY } from "../../protocol/index.js";
import { PortInUseError, startStack, type Stack } from "../../local/stack.js";
import { LOCAL_STACK_FILE } from "../../cli/config/local-stack.js";
import { ROOT, envFor, freePort, freePorts, holdingProxy, spawnNpmStart, stackProject, tempDir, tftcache, tftcacheAsync } from "./stack-harness.js";

let stack: Stack;
let env: NodeJS.ProcessEnv;
let persistTo: string;
let ports: { port: number; kvPort: number; consumerPort: number };

async function start() {
  // Room for every entry a test writes: eviction has its own tests in workerd, and must not race these. KV is
  // flushed only when a test asks (an hour's interval): a slow run must not see a background flush land between
  // a write and the check that KV is behind. The key is pinned, so a developer's own .dev.vars cannot change it.
  stack = await startStack({ root: ROOT, ...ports, persistTo, quiet: true, adminKey: "e2e-admin-key-0123456789", vars: { LOG_LEVEL: "error", CACHE_MAX_ENTRIES: "10000", KV_FLUSH_INTERVAL_SECONDS: "3600" } });
  env = envFor(stack.info);
}

const kvUrl = (key: string) => `${stack.info.cfApiBase}/accounts/${stack.info.accountId}/storage/kv/namespaces/${stack.info.namespaceId}/values/${key}`;
const kvHeaders = () => ({ authorization: `Bearer ${stack.info.apiToken}` });
const adminPut = (key: string, value: unknown) =>
  fetch(`${stack.info.url}/api/v1/cache/entries/${encodeURIComponent(key)}`, { method: "PUT", headers: { "x-api-key": stack.info.apiKey, "content-type": "application/json" }, body: JSON.stringify({ value }) });

beforeAll(async () => {
  persistTo = join(tempDir(), "state");
  const [port, kvPort, consumerPort] = (await freePorts(3)) as [number, number, number];
  ports = { port, kvPort, consumerPort };
  await start();
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe("every command against the real Worker in workerd and the local KV REST API", () => {
  it("stats --json parses and doctor is all green", async () => {
    const stats = await tftcache(["--json", "stats"], { env });
    expect(stats.code).toBe(0);
    expect(JSON.parse(stats.stdout)).toMatchObject({ size: 0, kv: { mode: "coalesced" } });
    const doctor = await tftcache(["doctor"], { env });
    expect(doctor.stdout).toMatch(/reachability\s+│ ok/);
    expect(doctor.stdout).toMatch(/auth\s+│ ok/);
    expect(doctor.code).toBe(0);
  });

  it("seed a file, then verify-kv --flush exits 0", async () => {
    const dir = tempDir();
    const lines = Array.from({ length: 250 }, (_, i) => JSON.stringify({ key: `quote:${String(i).padStart(3, "0")}`, value: { px: i, venue: "X" } }));
    writeFileSync(join(dir, "quotes.ndjson"), `${lines.join("\n")}\n`);
    const seed = await tftcache(["seed", "quotes.ndjson", "--ttl", "3600", "--batch", "100"], { env, cwd: dir });
    expect(seed.stdout).toMatch(/seeded 250 entries/);
    expect(seed.code).toBe(0);
    const verify = await tftcache(["verify-kv", "--flush"], { env });
    expect(verify.stdout).toMatch(/verify-kv: OK/);
    expect(verify.code).toBe(0);
    const list = await tftcache(["--json", "list", "--prefix", "quote:01", "--limit", "5"], { env });
    expect(JSON.parse(list.stdout).keys.map((k: { key: string }) => k.key)).toEqual(["quote:010", "quote:011", "quote:012", "quote:013", "quote:014"]);
  });

  it("a write not yet flushed: verify-kv --max-lag-seconds 0 exits 1 and says KV is behind", async () => {
    expect((await adminPut("quote:new", { px: 1 })).status).toBe(200);
    const r = await tftcache(["verify-kv", "--max-lag-seconds", "0"], { env });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/KV is behind the DO by 1 generation/);
    const tolerant = await tftcache(["verify-kv", "--max-lag-seconds", "600"], { env });
    expect(tolerant.code).toBe(0);
  });

  it("one key tampered in KV through the REST endpoint: diff and verify-kv exit 1 and name it", async () => {
    expect((await tftcache(["flush"], { env })).code).toBe(0);
    const snap = JSON.parse(await (await fetch(kvUrl(ENTRIES_KEY), { headers: kvHeaders() })).text());
    const target = snap.entries.find(([k]: [string]) => k === "quote:042");
    target[1].value = { px: 9999, venue: "X" };
    const put = await fetch(kvUrl(ENTRIES_KEY), { method: "PUT", headers: kvHeaders(), body: JSON.stringify(snap) });
    expect(put.status).toBe(200);
    const diff = await tftcache(["diff"], { env });
    expect(diff.code).toBe(1);
    expect(diff.stdout.trim()).toBe("~ quote:042  (value)");
    const verify = await tftcache(["--json", "verify-kv"], { env });
    expect(verify.code).toBe(1);
    const report = JSON.parse(verify.stdout);
    expect(report.items).toEqual([{ key: "quote:042", status: "differ", fields: ["value"] }]);
    expect(report.kv.entries.state).toBe("torn");
    // A torn snapshot is never served, by the CLI as by the Worker's KV fallback.
    const fromKv = await tftcache(["get", "quote:042", "--from", "kv"], { env });
    expect(fromKv.code).toBe(1);
    expect(fromKv.stdout).not.toMatch(/9999/);
    expect(fromKv.stderr).toMatch(/torn/);
  });

  it("garbage in the KV key: verify-kv exits 1 with 'unreadable'", async () => {
    await fetch(kvUrl(ENTRIES_KEY), { method: "PUT", headers: kvHeaders(), body: "\u0000not json" });
    const r = await tftcache(["verify-kv"], { env });
    expect(r.code).toBe(1);
    expect(r.stdout).toMatch(/do_cache_entries is unreadable/);
    // The Worker itself keeps serving from the DO and the next flush repairs KV.
    expect((await tftcache(["get", "quote:001"], { env })).code).toBe(0);
    expect((await tftcache(["verify-kv", "--flush"], { env })).code).toBe(0);
  });

  it("state survives a restart of the stack", async () => {
    await stack.stop();
    await start();
    const r = await tftcache(["--json", "stats"], { env });
    expect(JSON.parse(r.stdout).size).toBe(251);
    expect((await tftcache(["verify-kv"], { env })).code).toBe(0);
  }, 60_000);

  it("--local finds the stack from .wrangler/tftcache-local.json in a parent folder, with no env vars", async () => {
    const dir = tempDir();
    mkdirSync(join(dir, ".wrangler"));
    writeFileSync(join(dir, LOCAL_STACK_FILE), JSON.stringify(stack.info));
    const sub = join(dir, "src", "lib");
    mkdirSync(sub, { recursive: true });
    const r = await tftcache(["--local", "--json", "stats"], { env: { PATH: process.env.PATH }, cwd: sub });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).size).toBe(251);
    const none = await tftcache(["--local", "stats"], { env: { PATH: process.env.PATH }, cwd: tempDir() });
    expect(none.code).toBe(2);
    expect(none.stderr).toMatch(/no local stack file found \(searched for \.wrangler\/tftcache-local\.json from .* upward\)/);
  });

  it("a wrong API key exits 2 and says the key was refused, without printing it", async () => {
    const r = await tftcache(["stats"], { env: { ...env, TFTCACHE_API_KEY: "wrong-key-123456" } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refused the API key/);
    expect(r.stderr + r.stdout).not.toContain("wrong-key-123456");
  });

  it("clear without --yes from a pipe refuses; clear --yes empties the DO and both KV keys", async () => {
    const refused = await tftcache(["clear"], { env });
    expect(refused.code).toBe(2);
    expect((await tftcache(["--json", "stats"], { env })).stdout).toMatch(/"size": 251/);
    const r = await tftcache(["clear", "--yes"], { env });
    expect(r.code).toBe(0);
    expect(JSON.parse((await tftcache(["--json", "stats"], { env })).stdout).size).toBe(0);
    for (const key of [ENTRIES_KEY, STATS_KEY]) {
      const res = await fetch(kvUrl(key), { headers: kvHeaders() });
      expect(res.status).toBe(404);
      expect((await res.json()).errors[0].code).toBe(10009);
    }
    expect((await tftcache(["get", "quote:001"], { env })).code).toBe(1);
  });

  it("SIGINT during seed stops cleanly with exit 130 and says how many entries were written", async () => {
    const dir = tempDir();
    const entries = Array.from({ length: 100 }, (_, i) => ({ key: `bulk:${i}`, value: { i } }));
    writeFileSync(join(dir, "bulk.json"), JSON.stringify(entries));
    // Every step waits on an event, so the outcome is the same on any machine: the third batch is held at a
    // proxy, Ctrl-C is sent, the CLI says it will stop, and only then does the third batch complete.
    let seeds = 0;
    const proxy = await holdingProxy(stack.info.url, (req) => req.url === "/api/v1/cache/seed" && ++seeds === 3);
    try {
      const { child, done, output } = tftcacheAsync(["seed", "bulk.json", "--batch", "5"], { env: { ...env, TFTCACHE_URL: proxy.url }, cwd: dir });
      await output.waitFor("sending 100 entries in 20 batches of up to 5…"); // printed once Ctrl-C is handled
      await proxy.held;
      child.kill("SIGINT");
      await output.waitFor("interrupt: stopping after the batch in flight…");
      proxy.release();
      const r = await done;
      expect(r.code).toBe(130);
      expect(r.stderr).toMatch(/^error: interrupted: 15 of 100 entries written \(each batch is atomic; the rest were not sent\)$/m);
      expect(seeds).toBe(3);
    } finally {
      proxy.release();
      await proxy.close();
    }
    const listed = JSON.parse((await tftcache(["--json", "list", "--prefix", "bulk:"], { env })).stdout).keys.length;
    expect(listed).toBe(15);
  });

  it("the example consumer Worker caches through the service binding: one upstream call for many requests", async () => {
    const consumer = stack.consumerUrl!;
    // An hour's TTL: with the default 5 s a slow machine would see the entry go stale and refresh mid-test.
    const first = await (await fetch(`${consumer}/quote/aapl?ttl=3600`)).json();
    expect(first.quote).toMatchObject({ symbol: "AAPL" });
    const again = await (await fetch(`${consumer}/quote/AAPL?ttl=3600`)).json();
    expect(again.quote).toEqual(first.quote);
    const burst = await Promise.all(Array.from({ length: 20 }, () => fetch(`${consumer}/quote/MSFT?ttl=3600`).then((r) => r.json())));
    expect(new Set(burst.map((b) => JSON.stringify(b.quote))).size).toBe(1);
    expect((await (await fetch(`${consumer}/upstream-calls`)).json()).upstreamCalls).toBe(2);
    // What the application cached is what operators see, in the DO and, after a flush, in KV.
    const got = await tftcache(["--json", "get", "quote:MSFT"], { env });
    expect(JSON.parse(got.stdout).value).toEqual(burst[0].quote);
    expect((await tftcache(["verify-kv", "--flush"], { env })).code).toBe(0);
    const fromKv = await tftcache(["--json", "get", "quote:AAPL", "--from", "kv"], { env });
    expect(JSON.parse(fromKv.stdout).value).toEqual(first.quote);
  });

  it("the local KV REST API requires the bearer token", async () => {
    expect((await fetch(kvUrl(ENTRIES_KEY))).status).toBe(401);
    expect((await fetch(kvUrl(ENTRIES_KEY), { headers: { authorization: "Bearer nope" } })).status).toBe(403);
  });

  it("npm start refuses the same port for the Worker and the KV REST API before starting workerd", async () => {
    const [port] = await freePorts(1);
    await expect(startStack({ root: ROOT, port: port!, kvPort: port!, persistTo: join(tempDir(), "s"), quiet: true })).rejects.toThrow(/must differ/);
  });

  it("npm start refuses a port that is taken, with a clear message", async () => {
    const blocker: Server = createServer();
    const port = await freePort();
    await new Promise<void>((r) => blocker.listen(port, "127.0.0.1", () => r()));
    try {
      await expect(startStack({ root: ROOT, port, persistTo: join(tempDir(), "s"), quiet: true })).rejects.toBeInstanceOf(PortInUseError);
      const r = spawnSync(process.execPath, [join(ROOT, "node_modules", "tsx", "dist", "cli.mjs"), "local/start.ts", "--port", String(port)], { cwd: ROOT, encoding: "utf8", timeout: 30_000 });
      expect(r.status).toBe(2);
      expect(r.stderr).toMatch(new RegExp(`port ${port} on 127.0.0.1 is already in use`));
    } finally {
      blocker.close();
    }
  }, 60_000);

  it("npm start comes up, prints the exports, and stops cleanly on Ctrl-C", async () => {
    // A project of its own (its state file must not replace the developer's), with no .dev.vars.
    const { root, sub } = stackProject();
    const { child, output, exited, port } = await spawnNpmStart(root);
    const out = await output.waitFor("Ctrl-C to stop."); // the banner's last line: ready, however long that took
    expect(out).toMatch(/local stack ready in \d+ ms/);
    expect(out).toContain(`export TFTCACHE_URL=http://127.0.0.1:${port}`);
    expect(out).toMatch(/Admin key +local-dev-admin-key \(the built-in dev key, because there is no \.dev\.vars \(nor \.env\)\)/);
    expect(out).toContain("seeded 4 demo entries");
    const health = await fetch(`http://127.0.0.1:${port}/health`);
    expect(health.status).toBe(200);
    // --local from a folder below the project finds the file npm start wrote.
    expect(JSON.parse(readFileSync(join(root, LOCAL_STACK_FILE), "utf8"))).toMatchObject({ url: `http://127.0.0.1:${port}`, adminKeySource: "default" });
    const stats = await tftcache(["--local", "--json", "stats"], { env: { PATH: process.env.PATH }, cwd: sub });
    expect(stats.code).toBe(0);
    expect(JSON.parse(stats.stdout).size).toBe(4);
    child.kill("SIGINT");
    expect(await exited).toBe(130);
    expect(output.text).toContain("stopping…");
    await expect(fetch(`http://127.0.0.1:${port}/health`)).rejects.toThrow();
  }, 240_000);

  it("npm start uses ADMIN_API_KEY from .dev.vars (dotenv syntax) and says so", async () => {
    const key = "key-from-dev-vars-0123456789";
    const { root, sub } = stackProject({ devVars: `# local secrets\nexport ADMIN_API_KEY="${key}"   # mine\nOTHER=1\n` });
    const { child, output, exited, port } = await spawnNpmStart(root);
    try {
      const out = await output.waitFor("Ctrl-C to stop.");
      expect(out).toContain(`Admin key            ${key} (from .dev.vars)`);
      const res = await fetch(`http://127.0.0.1:${port}/api/v1/cache/stats`, { headers: { "x-api-key": key } });
      expect(res.status).toBe(200);
      expect((await tftcache(["--local", "stats"], { env: { PATH: process.env.PATH }, cwd: sub })).code).toBe(0);
    } finally {
      child.kill("SIGINT");
      await exited;
    }
  }, 240_000);

  it("npm start with ADMIN_API_KEY=\"\" in .dev.vars keeps the admin API disabled, as wrangler dev does, and says so", async () => {
    const { root, sub } = stackProject({ devVars: 'ADMIN_API_KEY=""\n' });
    const { child, output, exited, port } = await spawnNpmStart(root);
    try {
      const out = await output.waitFor("Ctrl-C to stop.");
      expect(out).toMatch(/Admin API +DISABLED: \.dev\.vars sets ADMIN_API_KEY to an empty value, so every admin route answers 503 admin_disabled/);
      expect(out).not.toContain("local-dev-admin-key");
      expect(out).not.toContain("export TFTCACHE_API_KEY");
      expect((await fetch(`http://127.0.0.1:${port}/health`)).status).toBe(200);
      // Never the well-known dev key: it is refused like any other, because no key is configured at all.
      for (const key of ["local-dev-admin-key", ""]) {
        const res = await fetch(`http://127.0.0.1:${port}/api/v1/cache/stats`, { headers: { "x-api-key": key } });
        expect(res.status).toBe(503);
        expect((await res.json()).error.code).toBe("admin_disabled");
      }
      const cli = await tftcache(["--local", "stats"], { env: { PATH: process.env.PATH, TFTCACHE_API_KEY: "some-exported-key-0123456789" }, cwd: sub });
      expect(cli.code).toBe(2);
      expect(cli.stderr).toMatch(/the admin API is disabled on the local stack/);
    } finally {
      child.kill("SIGINT");
      await exited;
    }
  }, 240_000);

  it("with the stack stopped, commands exit 2 with 'cannot reach'", async () => {
    await stack.stop();
    const r = await tftcache(["stats"], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/cannot reach http:\/\/127\.0\.0\.1:\d+: connection refused/);
    const v = await tftcache(["verify-kv"], { env });
    expect(v.code).toBe(2);
    await start(); // leave a stack for afterAll to stop
  }, 60_000);
});
