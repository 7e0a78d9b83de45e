import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { ROOT } from "./stack-harness.js";

describe("the npm package", () => {
  it("ships the shim, the compiled CLI, the client (tftcache/client) and nothing from tests or the Worker", () => {
    const r = spawnSync("npm", ["pack", "--dry-run", "--json", "--ignore-scripts"], { cwd: ROOT, encoding: "utf8" });
    expect(r.status).toBe(0);
    const files: string[] = JSON.parse(r.stdout)[0].files.map((f: { path: string }) => f.path);
    expect(files).toContain("bin/tftcache");
    expect(files).toContain("dist/cli/main.js");
    expect(files).toContain("dist/protocol/digest.js");
    // tftcache/client: TypeScript source for the application Worker's bundler, depending only on protocol/.
    expect(files).toContain("client/index.ts");
    expect(files).toContain("protocol/snapshot-read.ts");
    const pkg = JSON.parse(readFileSync(`${ROOT}/package.json`, "utf8"));
    expect(pkg.exports["./client"]).toBe("./client/index.ts");
    const clientImports = [...readFileSync(`${ROOT}/client/index.ts`, "utf8").matchAll(/from "([^"]+)"/g)].map((m) => m[1]);
    expect(clientImports.every((p) => p!.startsWith("../protocol/"))).toBe(true);
    expect(files.filter((f) => f.startsWith("test/") || f.startsWith("worker/") || f.startsWith("local/"))).toEqual([]);
  });

  it("bin/tftcache --version matches package.json and the Worker's VERSION", async () => {
    const pkg = JSON.parse((await import("node:fs")).readFileSync(`${ROOT}/package.json`, "utf8"));
    const { VERSION } = await import("../../protocol/version.js");
    const r = spawnSync(process.execPath, [`${ROOT}/bin/tftcache`, "--version"], { encoding: "utf8" });
    expect(r.stdout.trim()).toBe(pkg.version);
    expect(VERSION).toBe(pkg.version);
  });
});
