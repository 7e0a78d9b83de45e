import { spawn, spawnSync } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { BIN, ROOT, tempDir } from "./stack-harness.js";

/**
 * `tftcache --version` and `--help` must start about as fast as `node -e 0` (issue 13). Timing is the machine's
 * business, so this checks the cause instead: which modules a run loads. A module-resolution hook (node:module
 * register) appends every module the ESM loader resolves to a file; the run must not touch any chunk of the
 * bundle (commands and what they import: undici, chalk, cli-table3, smol-toml), which loads only when a command runs.
 */
async function modulesLoaded(args: string[]): Promise<{ code: number | null; stdout: string; modules: string[] }> {
  const dir = tempDir("tftcache-startup-");
  const log = join(dir, "resolved.txt");
  writeFileSync(log, "");
  writeFileSync(join(dir, "hooks.mjs"), `import { appendFileSync } from "node:fs";\nexport async function resolve(specifier, context, next) {\n  const r = await next(specifier, context);\n  appendFileSync(${JSON.stringify(log)}, r.url + "\\n");\n  return r;\n}\n`);
  writeFileSync(join(dir, "register.mjs"), `import { register } from "node:module";\nregister(${JSON.stringify(`file://${join(dir, "hooks.mjs")}`)});\n`);
  const child = spawn(process.execPath, ["--import", `file://${join(dir, "register.mjs")}`, BIN, ...args], { cwd: dir, env: { PATH: process.env.PATH, NO_COLOR: "1" }, stdio: ["ignore", "pipe", "pipe"] });
  let stdout = "";
  child.stdout.on("data", (d) => (stdout += d));
  const code = await new Promise<number | null>((res) => child.on("close", res));
  return { code, stdout, modules: readFileSync(log, "utf8").split("\n").filter(Boolean) };
}

/** What the bundle's files hold (written by cli/build-entry.mjs): the sources behind every file a run loads. */
const sourcesOf = (modules: string[]): string[] => {
  const contents = JSON.parse(readFileSync(join(ROOT, "dist/cli/chunks/contents.json"), "utf8")) as Record<string, string[]>;
  return modules.flatMap((m) => {
    const at = m.indexOf("/dist/cli/");
    return at < 0 ? [m] : (contents[m.slice(at + "/dist/cli/".length)] ?? [m]);
  });
};
const HEAVY = /node_modules\/(undici|chalk|cli-table3|smol-toml)\/|dist\/cli\/(commands\/|context\.js|http\/|output\.js|config\/)/;

describe("start-up loads only what --version and --help need", () => {
  for (const args of [["--version"], ["--help"], ["seed", "--help"]]) {
    it(`tftcache ${args.join(" ")}`, async () => {
      const r = await modulesLoaded(args);
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(args[0] === "--version" ? /^0\.1\.0\n$/ : /Usage: tftcache/);
      expect(r.modules.filter((m) => m.includes("/node_modules/"))).toEqual([]);
      expect(sourcesOf(r.modules).filter((m) => HEAVY.test(m))).toEqual([]);
      expect(r.modules).not.toContain("node:v8"); // the wasm flag is set for commands only (cli/main.ts)
      expect(r.modules.some((m) => m.endsWith("/dist/cli/instant.js"))).toBe(true); // the hook saw the CLI load
      // --version and piped --help print what the build kept from the program; commander loads for the rest.
      expect(r.modules.some((m) => m.endsWith("/dist/cli/entry.js"))).toBe(args[0] === "seed");
    });
  }

  /** Runs bin/tftcache with stdout a pipe, as the benchmark and `tftcache --help | less` do. */
  const printed = (args: string[]) => {
    const r = spawnSync(process.execPath, [BIN, ...args], { encoding: "utf8", env: { PATH: process.env.PATH } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };

  // A global flag before --help or --version sends the run through commander: what the program prints now.
  const pairs: Array<[string[], string[]]> = [[["--version"], ["--verbose", "--version"]], [["-V"], ["--verbose", "-V"]], [["--help"], ["--verbose", "--help"]], [["-h"], ["--verbose", "-h"]]];
  for (const [instant, throughCommander] of pairs) {
    it(`tftcache ${instant.join(" ")} prints exactly what commander prints for ${throughCommander.join(" ")}`, () => {
      const fast = printed(instant);
      const slow = printed(throughCommander);
      expect(slow.code).toBe(0);
      expect(slow.stdout.length).toBeGreaterThan(0);
      expect(fast).toEqual(slow);
    });
  }

  it("the kept help is the whole program's: every command is in it", () => {
    const help = printed(["--help"]).stdout;
    for (const command of ["stats", "list", "get", "set", "del", "purge", "seed", "diff", "verify-kv", "export", "restore", "clear", "flush", "doctor", "completion"]) expect(help).toMatch(new RegExp(`\\n  ${command} `));
  });

  it("a command still loads its own modules (the hook does see them)", async () => {
    const r = await modulesLoaded(["completion", "bash"]);
    expect(r.code).toBe(0);
    expect(r.modules.some((m) => /\/dist\/cli\/chunks\/completion-\w+\.js$/.test(m))).toBe(true);
  });

  it("a command that talks HTTP loads undici from the bundle, not from node_modules", async () => {
    const r = await modulesLoaded(["--url", "http://127.0.0.1:9", "--api-key", "k".repeat(20), "stats"]);
    expect(r.code).toBe(2); // nothing listens on port 9
    expect(r.modules.filter((m) => m.includes("/node_modules/"))).toEqual([]);
    expect(r.modules.some((m) => /\/dist\/cli\/chunks\/stats-\w+\.js$/.test(m))).toBe(true);
    expect(sourcesOf(r.modules).some((m) => m.includes("node_modules/undici/"))).toBe(true); // the check can see a heavy source
    expect(r.modules).toContain("node:v8"); // V8 told to keep undici's wasm on its baseline compiler before it loads
  });

  it("the start-up bundle is current: built from dist/cli/main.js by npm run build", () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { scripts: Record<string, string> };
    expect(pkg.scripts.build).toContain("node cli/build-entry.mjs");
    expect(readFileSync(BIN, "utf8")).toContain('from "../dist/cli/instant.js"');
    expect(readFileSync(BIN, "utf8")).toContain('import("../dist/cli/entry.js")');
  });
});
