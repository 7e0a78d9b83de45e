import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { ROOT, freePorts, tempDir } from "./stack-harness.js";

export interface WranglerDev {
  url: string;
  apiKey: string;
  output: () => string;
  stop(): Promise<void>;
}

/**
 * `wrangler dev` of the project's own wrangler.toml, the way users develop: unlike `npm start` (Miniflare), a
 * proxy sits in front of workerd here, and some behaviour differs. Ready when wrangler prints "Ready on"; no
 * sleeps. Stopped by signalling the process we started and waiting for it to exit.
 */
export async function startWranglerDev(opts: { apiKey: string; readyTimeoutMs?: number }): Promise<WranglerDev> {
  const [port, inspectorPort] = (await freePorts(2)) as [number, number];
  const persistTo = join(tempDir("tftcache-wrangler-dev-"), "state");
  const child = spawn(
    process.execPath,
    [
      join(ROOT, "node_modules", "wrangler", "bin", "wrangler.js"),
      "dev",
      "--ip", "127.0.0.1",
      "--port", String(port),
      "--inspector-port", String(inspectorPort),
      "--persist-to", persistTo,
      "--var", `ADMIN_API_KEY:${opts.apiKey}`,
      "--var", "LOG_LEVEL:error",
    ],
    {
      cwd: ROOT,
      env: { ...process.env, CI: "true", WRANGLER_SEND_METRICS: "false", CLOUDFLARE_CF_FETCH_ENABLED: "false", NO_COLOR: "1", FORCE_COLOR: "0" },
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  let output = "";
  const url = `http://127.0.0.1:${port}`;
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error(`wrangler dev was not ready after ${opts.readyTimeoutMs ?? 90_000} ms`)), opts.readyTimeoutMs ?? 90_000);
    const fail = (err: Error) => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${err.message}\n--- wrangler output ---\n${output}`));
    };
    const onData = (d: Buffer) => {
      output += d.toString();
      if (output.includes(`Ready on ${url}`)) {
        clearTimeout(timer);
        resolve();
      }
    };
    child.stdout!.on("data", onData);
    child.stderr!.on("data", onData);
    child.once("exit", (code) => fail(new Error(`wrangler dev exited with ${code} before it was ready`)));
  });
  return { url, apiKey: opts.apiKey, output: () => output, stop: () => stop(child) };
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGINT");
  const timer = setTimeout(() => child.kill("SIGKILL"), 15_000);
  await exited;
  clearTimeout(timer);
}
