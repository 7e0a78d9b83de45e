import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { ROOT } from "./stack-harness.js";

const run = (cmd: string, args: string[]) => spawnSync(cmd, args, { cwd: ROOT, encoding: "utf8", env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1" }, timeout: 180_000 });
const tsc = join(ROOT, "node_modules", "typescript", "bin", "tsc");

describe("project configuration", () => {
  it("the root tsconfig.json is a solution: it references every project and every TypeScript file belongs to one", () => {
    const solution = JSON.parse(readFileSync(join(ROOT, "tsconfig.json"), "utf8")) as { files: string[]; references: Array<{ path: string }> };
    expect(solution.files).toEqual([]);
    const projects = solution.references.map((r) => r.path.replace(/^\.\//, ""));
    expect(projects.sort()).toEqual(["tsconfig.cli.json", "tsconfig.node.json", "tsconfig.worker.json"]);
    const covered = new Set<string>();
    for (const p of projects) {
      const r = run(process.execPath, [tsc, "-p", p, "--listFilesOnly"]);
      expect(r.status, r.stderr + r.stdout).toBe(0);
      for (const line of r.stdout.split("\n")) if (line.startsWith(ROOT) && !line.includes("/node_modules/")) covered.add(line.slice(ROOT.length + 1));
    }
    const tracked = run("git", ["ls-files", "*.ts", "*.mts"]).stdout.split("\n").filter(Boolean);
    expect(tracked.length).toBeGreaterThan(50);
    expect(tracked.filter((f) => !covered.has(f))).toEqual([]);
  }, 180_000);

  it("CI builds the deploy bundle offline (npm run check:deploy: wrangler deploy --dry-run) before the tests", () => {
    const ci = readFileSync(join(ROOT, ".ci", "run"), "utf8");
    const lines = ci.split("\n");
    expect(lines.indexOf("npm run check:deploy")).toBeGreaterThan(-1);
    expect(lines.indexOf("npm run check:deploy")).toBeLessThan(lines.indexOf("npm test"));
    const out = join(ROOT, ".wrangler", "tmp", "deploy-check");
    rmSync(out, { recursive: true, force: true });
    const r = run("npm", ["run", "--silent", "check:deploy"]);
    expect(r.status, r.stderr + r.stdout).toBe(0);
    expect(r.stdout).toMatch(/--dry-run: exiting now\./);
    expect(r.stdout).toMatch(/env\.CACHE_DO \(CacheDurableObject\)\s+Durable Object/);
    expect(existsSync(join(out, "index.js"))).toBe(true);
  }, 180_000);
});
