import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { LOCAL_DEFAULTS, LOCAL_STACK_FILE, type LocalStackInfo } from "../../cli/config/local-stack.js";
import { chooseAdminKey, parseDevVars } from "../../local/dev-vars.js";
import { cli, json, mockAgent, ok, tempDir } from "./harness.js";
import { liveStats } from "./fixtures.js";

const STACK_URL = "http://stack.test:9999";
const STACK_KEY = "key-from-the-stack-file-0123";

/** A project folder with the state file `npm start` writes, and a folder a few levels below it. */
function project(info: Partial<LocalStackInfo> = {}) {
  const root = tempDir();
  mkdirSync(join(root, ".wrangler"));
  writeFileSync(join(root, LOCAL_STACK_FILE), JSON.stringify({ ...LOCAL_DEFAULTS, url: STACK_URL, apiKey: STACK_KEY, ...info }));
  const sub = join(root, "src", "deeper", "still");
  mkdirSync(sub, { recursive: true });
  return { root, sub };
}

describe("--local finds .wrangler/tftcache-local.json upward from the working directory", () => {
  it("from a subfolder, uses the stack the nearest file describes", async () => {
    const { sub } = project();
    const agent = mockAgent();
    agent.get(STACK_URL).intercept({ path: "/api/v1/cache/stats", method: "GET", headers: { "x-api-key": STACK_KEY } }).reply(200, ok(liveStats(4)), json);
    const r = await cli(["--local", "--json", "stats"], { agent, cwd: sub });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout).generation).toBe(4);
  });

  it("doctor says which file it used", async () => {
    const { root, sub } = project();
    const agent = mockAgent();
    agent.get(STACK_URL).intercept({ path: "/health", method: "GET" }).reply(200, ok({ status: "ok", version: "0.1.0" }), json);
    agent.get(STACK_URL).intercept({ path: "/api/v1/cache/stats", method: "GET" }).reply(200, ok(liveStats(4)), json);
    agent.get("http://127.0.0.1:8788").intercept({ path: (p) => p.includes("/metadata/"), method: "GET" }).reply(200, { success: true, errors: [], messages: [], result: { generation: 4 } });
    const r = await cli(["--local", "--json", "doctor"], { agent, cwd: sub });
    const url = JSON.parse(r.stdout).checks.find((c: { name: string }) => c.name === "worker url");
    expect(url.detail).toBe(`${STACK_URL} (from local ${join(root, LOCAL_STACK_FILE)})`);
  });

  it("with no file anywhere above, says where it looked and what to run (exit 2), and sends nothing", async () => {
    const dir = join(tempDir(), "a", "b");
    mkdirSync(dir, { recursive: true });
    const r = await cli(["--local", "stats"], { agent: mockAgent(), cwd: dir });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`error: --local: no local stack file found (searched for ${LOCAL_STACK_FILE} from ${dir} upward)`);
    expect(r.stderr).toMatch(/^hint: start the local stack with `npm start`/m);
  });

  it("a damaged file is an error, not a silent default", async () => {
    const root = tempDir();
    mkdirSync(join(root, ".wrangler"));
    writeFileSync(join(root, LOCAL_STACK_FILE), "{not json");
    const r = await cli(["--local", "stats"], { agent: mockAgent(), cwd: root });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: --local: cannot read .*tftcache-local\.json/m);
  });

  it("a stack running with the admin API disabled: a clear error, and no exported key is sent instead", async () => {
    const { sub } = project({ apiKey: "", adminKeySource: "disabled" });
    const r = await cli(["--local", "stats"], { agent: mockAgent(), cwd: sub, env: { TFTCACHE_API_KEY: "production-key-do-not-send-0123" } });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: the admin API is disabled on the local stack: its \.dev\.vars sets ADMIN_API_KEY to an empty value/m);
  });
});

describe(".dev.vars is read as wrangler dev reads it (dotenv.parse), and npm start never overrides it", () => {
  it("parses dotenv syntax: quotes, comments, export, spaces, multi-line and escapes", () => {
    const vars = parseDevVars(
      [
        "# a comment",
        "PLAIN=abc",
        "SPACED =  padded value   ",
        "COMMENTED=value # not part of it",
        'DOUBLE="has # hash and \\n newline"',
        "SINGLE='single \\n stays'",
        "BACKTICK=`tick`",
        "export EXPORTED=yes",
        'EMPTY_QUOTED=""',
        "EMPTY=",
        "COLON: works",
        'MULTI="line one',
        'line two"',
        "DUP=first",
        "DUP=second",
        "not a valid line",
      ].join("\r\n"),
    );
    expect(vars).toEqual({
      PLAIN: "abc",
      SPACED: "padded value",
      COMMENTED: "value",
      DOUBLE: "has # hash and \n newline",
      SINGLE: "single \\n stays",
      BACKTICK: "tick",
      EXPORTED: "yes",
      EMPTY_QUOTED: "",
      EMPTY: "",
      COLON: "works",
      MULTI: "line one\nline two",
      DUP: "second",
    });
  });

  it("chooses the key, and says why: .dev.vars, the built-in dev key, or disabled", () => {
    const dir = (text?: string) => (text === undefined ? tempDir() : tempDir({ ".dev.vars": text }));
    expect(chooseAdminKey(dir())).toMatchObject({ key: LOCAL_DEFAULTS.apiKey, source: "default", describe: "the built-in dev key, because there is no .dev.vars (nor .env)" });
    expect(chooseAdminKey(dir("OTHER=1\n"))).toMatchObject({ key: LOCAL_DEFAULTS.apiKey, source: "default", describe: "the built-in dev key, because .dev.vars has no ADMIN_API_KEY line" });
    expect(chooseAdminKey(dir('export ADMIN_API_KEY="s3cret-from-dev-vars-0123" # mine\n'))).toMatchObject({ key: "s3cret-from-dev-vars-0123", source: "dev-vars", describe: "from .dev.vars" });
    // An explicit empty value disables the admin API, exactly as under wrangler dev: never the well-known key.
    for (const empty of ['ADMIN_API_KEY=""\n', "ADMIN_API_KEY=\n", "ADMIN_API_KEY=''", "ADMIN_API_KEY=   # none\n"]) {
      const choice = chooseAdminKey(dir(empty));
      expect(choice, empty).toMatchObject({ key: "", source: "disabled" });
      expect(choice.describe).toMatch(/^DISABLED: \.dev\.vars sets ADMIN_API_KEY to an empty value, so every admin route answers 503 admin_disabled/);
    }
    expect(chooseAdminKey(dir('ADMIN_API_KEY=""'), { override: "given" })).toMatchObject({ key: "given", source: "option" });
  });

  it("without .dev.vars reads .env then .env.local, as wrangler dev does; .dev.vars wins when both exist", () => {
    const fromEnv = tempDir({ ".env": "ADMIN_API_KEY=from-dot-env-0123456789\n", ".env.local": "OTHER=1\n" });
    expect(chooseAdminKey(fromEnv)).toMatchObject({ key: "from-dot-env-0123456789", source: "dev-vars", describe: "from .env + .env.local" });
    const local = tempDir({ ".env": "ADMIN_API_KEY=from-dot-env-0123456789\n", ".env.local": "ADMIN_API_KEY=from-env-local-0123456789\n" });
    expect(chooseAdminKey(local).key).toBe("from-env-local-0123456789");
    const both = tempDir({ ".env": "ADMIN_API_KEY=from-dot-env-0123456789\n", ".dev.vars": "ADMIN_API_KEY=from-dev-vars-0123456789\n" });
    expect(chooseAdminKey(both)).toMatchObject({ key: "from-dev-vars-0123456789", describe: "from .dev.vars" });
  });
});
