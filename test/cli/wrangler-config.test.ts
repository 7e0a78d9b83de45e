import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { describe, expect, it } from "vitest";
import { findWranglerConfig } from "../../cli/config/wrangler-config.js";
import { parseJsonc } from "../../cli/config/jsonc.js";
import { ADMIN_KEY, CF_TOKEN, cli, json, mockAgent, ok } from "./harness.js";
import { liveStats, snapshot } from "./fixtures.js";

/** A folder tree: `{"wrangler.toml": …, "apps/web/wrangler.jsonc": …}`. */
function tree(files: Record<string, string | Buffer>): string {
  const root = mkdtempSync(join(tmpdir(), "tftcache-wrangler-"));
  for (const [path, text] of Object.entries(files)) {
    mkdirSync(dirname(join(root, path)), { recursive: true });
    writeFileSync(join(root, path), text);
  }
  return root;
}

const toml = (id: string, extra = "") => `${extra}[[kv_namespaces]]\nbinding = "CACHE_DO_KV"\nid = "${id}"\npreview_id = "${id}-preview"\n`;
const jsonc = (id: string, extra = "") => `// a new project's config, as \`npm create cloudflare\` writes it
{
  "name": "cache", /* block comments too */
  ${extra}
  "kv_namespaces": [
    { "binding": "CACHE_DO_KV", "id": "${id}", "preview_id": "${id}-preview", }, // trailing commas
  ],
}
`;

/** Which account and namespace the CLI would call for `get k --from kv`, run from `cwd` (no flags for either). */
async function resolved(cwd: string, args: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ account: string; namespace: string } | { code: number; stderr: string }> {
  const agent = mockAgent();
  let seen = "";
  agent.get("http://cf.test").intercept({ path: (p) => ((seen = p), true), method: "GET" }).reply(200, JSON.stringify(await snapshot(1, { k: 1 })));
  const r = await cli(["--url", "http://worker.test", "--api-key", ADMIN_KEY, "--api-token", CF_TOKEN, "--cf-api-base", "http://cf.test/client/v4", ...args, "get", "k", "--from", "kv"], { agent, env, cwd });
  if (!seen) return { code: r.code, stderr: r.stderr };
  const m = /\/accounts\/([^/]+)\/storage\/kv\/namespaces\/([^/]+)\//.exec(seen)!;
  return { account: m[1]!, namespace: m[2]! };
}

describe("the wrangler config, found and read as wrangler finds and reads it", () => {
  it("reads wrangler.jsonc (comments, trailing commas) and its account_id: a new project needs no --namespace-id", async () => {
    const root = tree({ "wrangler.jsonc": jsonc("jsonc-ns", '"account_id": "acct-jsonc",') });
    expect(await resolved(root)).toEqual({ account: "acct-jsonc", namespace: "jsonc-ns" });
    expect(await resolved(root, ["--preview"])).toEqual({ account: "acct-jsonc", namespace: "jsonc-ns-preview" });
  });

  it("reads wrangler.json with the same parser (wrangler allows comments there too)", async () => {
    const root = tree({ "wrangler.json": jsonc("json-ns", '"account_id": "acct-json",') });
    expect(await resolved(root)).toEqual({ account: "acct-json", namespace: "json-ns" });
  });

  it("searches upward from the working folder: a project's own wrangler.jsonc wins over a parent's wrangler.toml", async () => {
    const root = tree({ "wrangler.toml": toml("parent-ns", 'account_id = "acct-parent"\n'), "apps/cache/wrangler.jsonc": jsonc("child-ns", '"account_id": "acct-child",'), "apps/cache/src/lib/.keep": "" });
    expect(await resolved(join(root, "apps/cache/src/lib"))).toEqual({ account: "acct-child", namespace: "child-ns" });
    // From the parent's own folder, the parent's file.
    expect(await resolved(root)).toEqual({ account: "acct-parent", namespace: "parent-ns" });
  });

  it("in one folder, wrangler's order: wrangler.json, then wrangler.jsonc, then wrangler.toml", () => {
    const all = tree({ "wrangler.json": "{}", "wrangler.jsonc": "{}", "wrangler.toml": "" });
    expect(findWranglerConfig(all)?.path).toBe(join(all, "wrangler.json"));
    const two = tree({ "wrangler.jsonc": "{}", "wrangler.toml": "" });
    expect(findWranglerConfig(two)?.path).toBe(join(two, "wrangler.jsonc"));
    // A folder named like a config file is not one (wrangler's find-up matches files only).
    const dir = tree({ "wrangler.json/.keep": "", "wrangler.toml": "" });
    expect(findWranglerConfig(dir)?.path).toBe(join(dir, "wrangler.toml"));
  });

  it("like wrangler 4, a wrangler.json in a parent folder wins over a nearer wrangler.toml, and doctor says so", async () => {
    const root = tree({ "wrangler.json": '{"kv_namespaces":[{"binding":"CACHE_DO_KV","id":"parent-json-ns"}]}', "svc/wrangler.toml": toml("svc-ns") });
    const found = findWranglerConfig(join(root, "svc"));
    expect(found).toEqual({ path: join(root, "wrangler.json"), shadowed: join(root, "svc", "wrangler.toml") });
    expect(await resolved(join(root, "svc"), ["--account-id", "a"])).toEqual({ account: "a", namespace: "parent-json-ns" });
    const r = await cli(["--json", "doctor"], { cwd: join(root, "svc") });
    const check = JSON.parse(r.stdout).checks.find((c: { name: string }) => c.name === "wrangler config");
    expect(check).toMatchObject({ verdict: "warn", detail: expect.stringContaining(`the nearer ${join(root, "svc", "wrangler.toml")} is not read`) });
  });

  it("--env selects the environment's namespace (not inherited) and account_id (inherited unless overridden)", async () => {
    const cfg = `{
      "account_id": "acct-top",
      "kv_namespaces": [{ "binding": "CACHE_DO_KV", "id": "top-ns" }],
      "env": {
        "staging": { "kv_namespaces": [{ "binding": "CACHE_DO_KV", "id": "staging-ns" }] },
        "prod": { "account_id": "acct-prod", "kv_namespaces": [{ "binding": "CACHE_DO_KV", "id": "prod-ns" }] },
        "bare": {}
      }
    }`;
    const root = tree({ "wrangler.jsonc": cfg });
    expect(await resolved(root, ["--env", "staging"])).toEqual({ account: "acct-top", namespace: "staging-ns" });
    expect(await resolved(root, ["--env", "prod"])).toEqual({ account: "acct-prod", namespace: "prod-ns" });
    const bare = await resolved(root, ["--env", "bare"]);
    expect(bare).toMatchObject({ code: 2, stderr: expect.stringMatching(/needs --namespace-id or TFTCACHE_KV_NAMESPACE_ID, or a CACHE_DO_KV binding in .*wrangler\.jsonc/) });
    const missing = await resolved(root, ["--env", "qa"]);
    expect(missing).toMatchObject({ code: 2, stderr: expect.stringMatching(/wrangler environment "qa" is not defined in .*wrangler\.jsonc/) });
  });

  it("flags and env vars still win over the wrangler config, for the account id too", async () => {
    const root = tree({ "wrangler.toml": toml("toml-ns", 'account_id = "acct-toml"\n') });
    expect(await resolved(root, [], { CLOUDFLARE_ACCOUNT_ID: "acct-env" })).toEqual({ account: "acct-env", namespace: "toml-ns" });
    expect(await resolved(root, ["--account-id", "acct-flag", "--namespace-id", "ns-flag"])).toEqual({ account: "acct-flag", namespace: "ns-flag" });
  });

  it("a broken wrangler.jsonc is an error that says where, and a BOM is skipped", async () => {
    const broken = tree({ "wrangler.jsonc": '{\n  "kv_namespaces": [\n    { "binding": "CACHE_DO_KV" "id": "x" }\n  ]\n}\n' });
    const r = await resolved(broken);
    expect(r).toMatchObject({ code: 2, stderr: expect.stringMatching(/cannot parse .*wrangler\.jsonc: .* at line 3, column \d+/) });
    const bom = tree({ "wrangler.jsonc": Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(jsonc("bom-ns", '"account_id": "a",'))]) });
    expect(await resolved(bom)).toEqual({ account: "a", namespace: "bom-ns" });
  });

  it("doctor says which file it used and where each value came from", async () => {
    const root = tree({ "wrangler.jsonc": jsonc("doc-ns", '"account_id": "acct-doc",'), "sub/.keep": "" });
    const agent = mockAgent();
    const w = agent.get("http://worker.test");
    w.intercept({ path: "/health", method: "GET" }).reply(200, ok({ status: "ok", version: "0.1.0" }), json);
    w.intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, ok(liveStats(1)), json);
    agent.get("http://cf.test").intercept({ path: (p) => p.includes("/metadata/"), method: "GET" }).reply(200, { success: true, errors: [], messages: [], result: { generation: 1 } });
    const r = await cli(["--url", "http://worker.test", "--api-key", ADMIN_KEY, "--api-token", CF_TOKEN, "--cf-api-base", "http://cf.test/client/v4", "--json", "doctor"], { agent, cwd: join(root, "sub") });
    const checks = JSON.parse(r.stdout).checks as Array<{ name: string; verdict: string; detail: string }>;
    expect(checks.find((c) => c.name === "wrangler config")).toEqual({ name: "wrangler config", verdict: "ok", detail: join(root, "wrangler.jsonc") });
    const cf = checks.find((c) => c.name === "cloudflare api")!.detail;
    expect(cf).toContain(`account acct-doc (from account_id in ${join(root, "wrangler.jsonc")})`);
    expect(cf).toContain(`namespace doc-ns (from CACHE_DO_KV id in ${join(root, "wrangler.jsonc")})`);
    expect(r.code).toBe(0);
  });
});

describe("JSONC", () => {
  it("keeps strings that look like comments or trailing commas intact", () => {
    expect(parseJsonc('{"url": "https://x//y", "s": "/* no */", "t": "a,]", /* c */ "n": [1, 2,], }')).toEqual({ url: "https://x//y", s: "/* no */", t: "a,]", n: [1, 2] });
    expect(parseJsonc('{"q": "say \\"hi\\", // not a comment"}')).toEqual({ q: 'say "hi", // not a comment' });
  });
});
