import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync, mkdtempSync, symlinkSync, writeFileSync } from "node:fs";
import { createServer as createHttpServer, type IncomingMessage } from "node:http";
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

/**
 * `n` distinct free ports: every probe stays open until all are picked, so two calls cannot be handed the same
 * port (closing a probe before the next bind lets the kernel return it again).
 */
export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, () => new Promise<ReturnType<typeof createServer>>((resolveServer, reject) => {
      const server = createServer();
      server.once("error", reject);
      server.listen(0, "127.0.0.1", () => resolveServer(server));
    })),
  );
  const ports = servers.map((s) => (s.address() as { port: number }).port);
  await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  return ports;
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

/** For a process the test signals while it runs; `output.waitFor` waits on what it prints. */
export function tftcacheAsync(args: string[], opts: { env: NodeJS.ProcessEnv; cwd?: string }) {
  const child = spawn(process.execPath, [BIN, ...args], { env: opts.env, cwd: opts.cwd ?? tempDir(), stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (d) => (stdout += d));
  child.stderr.on("data", (d) => (stderr += d));
  const output = watchOutput(child);
  const done = new Promise<Spawned>((res) => child.on("close", (code) => res({ code, stdout, stderr })));
  return { child, done, output };
}

/**
 * Waits on a child's output (stdout and stderr together) instead of sleeping: `waitFor` resolves as soon as the
 * text matches, and rejects, with everything printed so far, if the process exits first. The timeout is only
 * a safety net for a hung process, generous enough for a loaded machine; no test relies on it passing.
 */
export function watchOutput(child: ChildProcess) {
  let text = "";
  let exit: string | null = null;
  const waiters = new Set<() => void>();
  const onData = (d: Buffer | string) => {
    text += d;
    for (const w of [...waiters]) w();
  };
  child.stdout?.on("data", onData);
  child.stderr?.on("data", onData);
  child.on("close", (code, signal) => {
    exit = `exited (${signal ?? code})`;
    for (const w of [...waiters]) w();
  });
  return {
    get text() {
      return text;
    },
    waitFor(pattern: RegExp | string, safetyNetMs = 180_000): Promise<string> {
      const matches = () => (typeof pattern === "string" ? text.includes(pattern) : pattern.test(text));
      return new Promise((resolvePromise, reject) => {
        let timer: NodeJS.Timeout | undefined;
        const check = () => {
          if (matches()) {
            waiters.delete(check);
            clearTimeout(timer);
            resolvePromise(text);
          } else if (exit !== null) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(new Error(`${exit} before printing ${pattern}; output so far:\n${text}`));
          }
        };
        waiters.add(check);
        timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`still no ${pattern} after ${safetyNetMs} ms; output so far:\n${text}`));
        }, safetyNetMs);
        check();
      });
    },
  };
}

/**
 * A pass-through HTTP proxy in front of the Worker that holds one chosen request until the test releases it:
 * "Ctrl-C while batch 3 is in flight" becomes an event the test controls, not a race against the machine.
 */
export async function holdingProxy(target: string, shouldHold: (req: IncomingMessage) => boolean) {
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  let onHeld!: () => void;
  const held = new Promise<void>((r) => (onHeld = r));
  const server = createHttpServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    if (shouldHold(req)) {
      onHeld();
      await released;
    }
    const headers = new Headers();
    for (const [k, v] of Object.entries(req.headers)) if (v !== undefined && !["host", "connection", "content-length"].includes(k)) headers.set(k, Array.isArray(v) ? v.join(", ") : v);
    const body = chunks.length > 0 ? Buffer.concat(chunks) : undefined;
    const upstream = await fetch(`${target}${req.url}`, { method: req.method ?? "GET", headers, ...(body ? { body } : {}) });
    const out = Buffer.from(await upstream.arrayBuffer());
    const resHeaders: Record<string, string> = {};
    upstream.headers.forEach((v, k) => {
      if (!["content-encoding", "content-length", "transfer-encoding", "connection"].includes(k)) resHeaders[k] = v;
    });
    res.writeHead(upstream.status, resHeaders);
    res.end(out);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}`,
    /** Resolves when the chosen request has arrived and is being held. */
    held,
    release,
    close: () => new Promise<void>((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

/**
 * A project folder for `npm start` that is not the repository: wrangler.toml and the Worker's source linked in,
 * an optional .dev.vars, and a subfolder to run `tftcache --local` from. The stack writes its state file here,
 * never over the developer's own .wrangler/tftcache-local.json.
 */
export function stackProject(opts: { devVars?: string } = {}): { root: string; sub: string } {
  const root = tempDir("tftcache-project-");
  for (const name of ["wrangler.toml", "worker", "protocol"]) symlinkSync(join(ROOT, name), join(root, name));
  if (opts.devVars !== undefined) writeFileSync(join(root, ".dev.vars"), opts.devVars);
  const sub = join(root, "scripts", "nested");
  mkdirSync(sub, { recursive: true });
  return { root, sub };
}

/** `npm start` (local/start.ts under tsx) in `cwd`, on free ports, with state in a temp folder. */
export async function spawnNpmStart(cwd: string) {
  const [port, kvPort] = (await freePorts(2)) as [number, number];
  const child = spawn(process.execPath, [join(ROOT, "node_modules", "tsx", "dist", "cli.mjs"), join(ROOT, "local", "start.ts"), "--port", String(port), "--kv-port", String(kvPort), "--persist-to", join(tempDir(), "v3"), "--quiet"], {
    cwd,
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output = watchOutput(child);
  const exited = new Promise<number | null>((r) => child.on("close", (code) => r(code)));
  return { child, output, exited, port, kvPort };
}
