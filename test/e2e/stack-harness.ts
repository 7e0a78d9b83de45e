import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { LocalStackInfo } from "../../cli/config/local-stack.js";

export const ROOT = resolve(import.meta.dirname, "../..");
export const BIN = join(ROOT, "bin", "tftcache");

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

export const tempDir = (prefix = "tftcache-e2e-") => mkdtempSync(join(tmpdir(), prefix));

/** The env a user would export after reading `npm start`'s banner. */
export function envFor(info: LocalStackInfo): NodeJS.ProcessEnv {
  return {
    PATH: process.env.PATH,
    NO_COLOR: "1",
    TFTCACHE_URL: info.url,
    TFTCACHE_API_KEY: info.apiKey,
    CLOUDFLARE_ACCOUNT_ID: info.accountId,
    CLOUDFLARE_API_TOKEN: info.apiToken,
    TFTCACHE_KV_NAMESPACE_ID: info.namespaceId,
    CLOUDFLARE_API_BASE_URL: info.cfApiBase,
  };
}

export interface Spawned {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the real shim, as a user or a CI job would, in a directory with no config of its own. Always async: the
 * local KV REST server lives in this process, so a synchronous spawn would deadlock against it.
 */
export async function tftcache(args: string[], opts: { env: NodeJS.ProcessEnv; cwd?: string }): Promise<Spawned> {
  const { child, done } = tftcacheAsync(args, opts);
  child.stdin.end();
  return done;
}

/** For a process the test signals while it runs. */
export function tftcacheAsync(args: string[], opts: { env: NodeJS.ProcessEnv; cwd?: string }) {
  const child = spawn(process.execPath, [BIN, ...args], { env: opts.env, cwd: opts.cwd ?? tempDir(), stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const done = new Promise<Spawned>((res) => child.on("close", (code) => res({ code, stdout, stderr })));
  return { child, done };
}
