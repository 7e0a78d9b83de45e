import { spawnSync } from "node:child_process";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ENTRIES_KEY, digestEntries, type EntriesSnapshot } from "../../protocol/index.js";
import { startStack, type Stack } from "../../local/stack.js";
import { ROOT, envFor, freePorts, holdingProxy, tempDir, tftcache, tftcacheAsync } from "./stack-harness.js";

/**
 * Issue 14 end to end: the real CLI (bin/tftcache, built) against the real Worker in workerd and the local KV REST
 * API. The stack keeps wrangler.toml's CACHE_MAX_BYTES (20 MiB) and bounds entries at 2,000, so a 1,500 × 12 KB
 * seed fits and a larger one must be refused. KV is flushed only when a test asks.
 */
let stack: Stack;
let env: NodeJS.ProcessEnv;

beforeAll(async () => {
  const [port, kvPort] = (await freePorts(2)) as [number, number];
  stack = await startStack({ root: ROOT, port, kvPort, persistTo: join(tempDir(), "state"), quiet: true, adminKey: "e2e-admin-key-0123456789", vars: { LOG_LEVEL: "error", CACHE_MAX_ENTRIES: "2000", KV_FLUSH_INTERVAL_SECONDS: "3600" } });
  env = envFor(stack.info);
}, 120_000);

afterAll(async () => {
  await stack?.stop();
});

const admin = (path: string, init: RequestInit = {}) => fetch(`${stack.info.url}/api/v1/cache${path}`, { ...init, headers: { "x-api-key": stack.info.apiKey, "content-type": "application/json", ...init.headers } });
const metadata = async () => ((await (await admin("/metadata")).json()) as { data: { generation: number; digest: string; size: number } }).data;
const kvUrl = (key: string) => `${stack.info.cfApiBase}/accounts/${stack.info.accountId}/storage/kv/namespaces/${stack.info.namespaceId}/values/${key}`;
const kvHeaders = () => ({ authorization: `Bearer ${stack.info.apiToken}` });
const ndjson = (n: number, bytes: number, prefix: string) => `${Array.from({ length: n }, (_, i) => JSON.stringify({ key: `${prefix}${String(i).padStart(5, "0")}`, value: { i, pad: "é".repeat(bytes / 2) } })).join("\n")}\n`;

describe("the CLI at real sizes, against the local stack", () => {
  it("seeds 1,500 entries of 12 KB with default flags (18 MB: byte-bounded batches, no 413, no ECONNRESET)", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "big.ndjson"), ndjson(1500, 12_000, "big:"));
    const r = await tftcache(["seed", "big.ndjson", "--ttl", "3600"], { env, cwd: dir });
    expect(r.stderr).not.toMatch(/ECONNRESET|too_large|413/);
    expect(r.stdout).toMatch(/^seeded 1500 entries$/m);
    expect(r.code).toBe(0);
    expect((await metadata()).size).toBe(1500);
  }, 240_000);

  it("refuses a seed that would evict its own entries at once (exit 2, naming CACHE_MAX_ENTRIES), and writes nothing", async () => {
    const before = await metadata();
    const dir = tempDir();
    writeFileSync(join(dir, "more.ndjson"), ndjson(2_100, 10, "more:"));
    const r = await tftcache(["seed", "more.ndjson"], { env, cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/refusing to seed 2100 entries: the input alone holds 2,100 entries, over the cache's bound of 2,000 \(CACHE_MAX_ENTRIES\)/);
    expect(await metadata()).toMatchObject({ generation: before.generation, size: 1500 });
  }, 120_000);

  it("rejects a seed file that is not UTF-8 (line and byte), and keeps a BOM's first line", async () => {
    const dir = tempDir();
    writeFileSync(join(dir, "latin1.ndjson"), Buffer.concat([Buffer.from('{"key":"cafe","value":"caf'), Buffer.from([0xe9]), Buffer.from('"}\n')]));
    const bad = await tftcache(["seed", "latin1.ndjson"], { env, cwd: dir });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toMatch(/invalid UTF-8 at line 1, byte 27 of that line/);
    writeFileSync(join(dir, "bom.ndjson"), `\uFEFF{"key":"bom:first","value":"café"}\n{"key":"bom:second","value":2}\n`);
    const ok = await tftcache(["seed", "bom.ndjson"], { env, cwd: dir });
    expect(ok.code).toBe(0);
    expect(JSON.parse((await tftcache(["--json", "get", "bom:first"], { env })).stdout).value).toBe("café");
    expect((await tftcache(["del", "bom:first"], { env })).code).toBe(0);
    expect((await tftcache(["del", "bom:second"], { env })).code).toBe(0);
  }, 120_000);

  it("set, del and purge --prefix (dry run, refusal without --yes, then --yes)", async () => {
    expect((await tftcache(["set", "one:a", '{"bid":1.5}', "--ttl", "600"], { env })).code).toBe(0);
    expect(JSON.parse((await tftcache(["--json", "get", "one:a"], { env })).stdout).value).toEqual({ bid: 1.5 });
    expect((await tftcache(["del", "one:a"], { env })).code).toBe(0);
    expect((await tftcache(["del", "one:a"], { env })).code).toBe(1);
    for (const k of ["tmp:1", "tmp:2", "tmp:3"]) expect((await tftcache(["set", k, "true"], { env })).code).toBe(0);
    const dry = await tftcache(["purge", "--prefix", "tmp:", "--dry-run"], { env });
    expect(dry.stdout.trim().split("\n")).toEqual(["tmp:1", "tmp:2", "tmp:3"]);
    const refused = await tftcache(["purge", "--prefix", "tmp:"], { env });
    expect(refused.code).toBe(2);
    const purged = await tftcache(["--json", "purge", "--prefix", "tmp:", "--yes"], { env });
    expect(JSON.parse(purged.stdout)).toMatchObject({ prefix: "tmp:", deleted: 3 });
    expect(JSON.parse((await tftcache(["--json", "list", "--prefix", "tmp:"], { env })).stdout).keys).toEqual([]);
    expect((await metadata()).size).toBe(1500);
  }, 120_000);

  it("a project folder with only wrangler.jsonc (and one nested under a parent wrangler.toml) needs no namespace or account flags", async () => {
    expect((await tftcache(["flush"], { env })).code).toBe(0);
    const { TFTCACHE_KV_NAMESPACE_ID: _ns, CLOUDFLARE_ACCOUNT_ID: _acct, ...bare } = env;
    const jsonc = `// wrangler.jsonc, as new projects have it
{
  "name": "tftcache",
  "account_id": "${stack.info.accountId}", // the account that owns the namespace
  "kv_namespaces": [
    { "binding": "CACHE_DO_KV", "id": "${stack.info.namespaceId}", },
  ],
}
`;
    const alone = tempDir();
    writeFileSync(join(alone, "wrangler.jsonc"), jsonc);
    const r = await tftcache(["verify-kv"], { env: bare, cwd: alone });
    expect(r.stdout).toMatch(/verify-kv: OK/);
    expect(r.code).toBe(0);
    // A monorepo: the parent's wrangler.toml names another namespace and account; the project's own file wins.
    const mono = tempDir();
    writeFileSync(join(mono, "wrangler.toml"), 'account_id = "someone-else"\n[[kv_namespaces]]\nbinding = "CACHE_DO_KV"\nid = "ffffffffffffffffffffffffffffffff"\n');
    mkdirSync(join(mono, "services", "cache", "src"), { recursive: true });
    writeFileSync(join(mono, "services", "cache", "wrangler.jsonc"), jsonc);
    const nested = await tftcache(["verify-kv"], { env: bare, cwd: join(mono, "services", "cache", "src") });
    expect(nested.stdout).toMatch(/verify-kv: OK/);
    expect(nested.code).toBe(0);
    const doctor = await tftcache(["--json", "doctor"], { env: bare, cwd: join(mono, "services", "cache", "src") });
    expect(JSON.parse(doctor.stdout).checks.find((c: { name: string }) => c.name === "wrangler config").detail).toBe(join(mono, "services", "cache", "wrangler.jsonc"));
  }, 180_000);

  it("diff and verify-kv show the first 20 differing keys and how many more; --json lists all", async () => {
    const text = await (await fetch(kvUrl(ENTRIES_KEY), { headers: kvHeaders() })).text();
    const snap = JSON.parse(text) as EntriesSnapshot;
    for (const [, e] of snap.entries.slice(0, 45)) e.value = { tampered: true };
    snap.digest = await digestEntries(snap.entries); // a consistent snapshot with other contents: only the per-key compare can tell
    expect((await fetch(kvUrl(ENTRIES_KEY), { method: "PUT", headers: kvHeaders(), body: JSON.stringify(snap) })).status).toBe(200);
    const diff = await tftcache(["diff"], { env });
    expect(diff.code).toBe(1);
    const lines = diff.stdout.trim().split("\n");
    expect(lines).toHaveLength(21);
    expect(lines[20]).toBe("… and 25 more (use --all or --json)");
    const verify = await tftcache(["verify-kv"], { env });
    expect(verify.code).toBe(1);
    expect(verify.stdout.match(/^~ big:\d{5}  \(value\)$/gm)).toHaveLength(20);
    expect(verify.stdout).toMatch(/^… and 25 more \(use --all or --json\)$/m);
    const asJson = await tftcache(["--json", "diff"], { env });
    expect(JSON.parse(asJson.stdout).items).toHaveLength(45);
    expect((await tftcache(["verify-kv", "--flush"], { env })).code).toBe(0);
  }, 180_000);

  it("export → clear → restore → verify-kv: the same digest as before", async () => {
    const dir = tempDir();
    const before = await metadata();
    const exp = await tftcache(["export", "backup.json"], { env, cwd: dir });
    expect(exp.code).toBe(0);
    const file = JSON.parse(readFileSync(join(dir, "backup.json"), "utf8")) as EntriesSnapshot;
    expect(file.digest).toBe(before.digest);
    expect(file.entries).toHaveLength(1500);
    expect((await tftcache(["clear", "--yes"], { env })).code).toBe(0);
    expect((await metadata()).size).toBe(0);
    const restore = await tftcache(["restore", "backup.json", "--yes"], { env, cwd: dir });
    expect(restore.stdout).toMatch(new RegExp(`restored 1500 entries from backup\\.json \\(generation \\d+, ${file.digest}\\); digest equals the file's`));
    expect(restore.stdout).toMatch(/flushed generation \d+ to KV; checking it as verify-kv does:/);
    expect(restore.stdout).toMatch(/verify-kv: OK, KV matches the DO/);
    expect(restore.code).toBe(0);
    expect((await metadata()).digest).toBe(before.digest);
    const again = await tftcache(["export", "-"], { env });
    expect((JSON.parse(again.stdout) as EntriesSnapshot).digest).toBe(before.digest);
    expect((await tftcache(["verify-kv"], { env })).code).toBe(0);
  }, 240_000);

  it("export - whose reader goes away fails (exit 2) instead of reporting a backup that was never written", async () => {
    const { child, done } = tftcacheAsync(["export", "-"], { env });
    child.stdout.destroy(); // as `tftcache export - | false` would
    const r = await done;
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/stdout was closed before the whole export was written \(EPIPE\)|cannot write the export to stdout/);
    expect(r.stderr).not.toMatch(/^exported /m);
  }, 120_000);

  it("an interrupted restore (Ctrl-C while chunk 2 is in flight) leaves the old contents and exits 130", async () => {
    // The backup to restore: the current 1,500 entries (five chunks of at most 4 MiB); then the cache changes.
    const dir = tempDir();
    expect((await tftcache(["export", "backup.json"], { env, cwd: dir })).code).toBe(0);
    expect((await tftcache(["set", "after:backup", "1"], { env })).code).toBe(0);
    const before = await metadata();
    let posts = 0;
    const proxy = await holdingProxy(stack.info.url, (req) => req.url === "/api/v1/cache/restore" && req.method === "POST" && ++posts === 2);
    try {
      const { child, done, output } = tftcacheAsync(["restore", "backup.json", "--yes"], { env: { ...env, TFTCACHE_URL: proxy.url }, cwd: dir });
      await output.waitFor("(invisible to the cache until the commit)…"); // printed once Ctrl-C is handled
      await proxy.held;
      child.kill("SIGINT");
      await output.waitFor("interrupt: stopping after the chunk in flight; the cache keeps its old contents…");
      proxy.release();
      const r = await done;
      expect(r.code).toBe(130);
      expect(r.stderr).toMatch(/^error: interrupted: nothing was restored; the cache keeps its old contents \(the staged upload was discarded\)$/m);
      expect(posts).toBe(2); // no third chunk, no commit
    } finally {
      proxy.release();
      await proxy.close();
    }
    expect(await metadata()).toMatchObject({ generation: before.generation, digest: before.digest, size: 1501 });
    expect((await tftcache(["get", "after:backup"], { env })).code).toBe(0);
  }, 240_000);

  it("completion bash from the installed shim is a script bash accepts", async () => {
    const r = await tftcache(["completion", "bash"], { env });
    expect(r.code).toBe(0);
    const file = join(tempDir(), "tftcache.bash");
    writeFileSync(file, r.stdout);
    const check = spawnSync("bash", ["-n", file], { encoding: "utf8" });
    expect(check.stderr).toBe("");
    expect(check.status).toBe(0);
  });
});
