import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { MockAgent } from "undici";
import { run } from "../../cli/main.js";
import type { Io } from "../../cli/io.js";

export const WORKER = "http://worker.test";
export const CF = "http://cf.test/client/v4";
export const ADMIN_KEY = "adm-SECRET-key-9f8e7d";
export const CF_TOKEN = "cf-SECRET-token-1a2b3c";
export const ACCOUNT = "acct123";
export const NS = "ns456";
export const KV_PATH = `/client/v4/accounts/${ACCOUNT}/storage/kv/namespaces/${NS}`;

export function mockAgent(): MockAgent {
  const agent = new MockAgent();
  agent.disableNetConnect();
  return agent;
}

/** Ctrl-C on demand: a test presses it when something observable happened (a request arrived, a line printed). */
export class CtrlC {
  private readonly listeners = new Set<() => void>();
  pressed = 0;
  press(): void {
    this.pressed++;
    for (const listener of [...this.listeners]) listener();
  }
  listen(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }
}

export interface CliRun {
  code: number;
  stdout: string;
  stderr: string;
  sleeps: number[];
}

/** Runs the CLI in-process against a MockAgent, with a working directory that has no config files. */
export async function cli(
  argv: string[],
  opts: {
    agent?: MockAgent;
    env?: NodeJS.ProcessEnv;
    cwd?: string;
    stdin?: string;
    stdinTTY?: boolean;
    stdoutTTY?: boolean;
    /** stderr is a terminal: progress lines are drawn there. */
    stderrTTY?: boolean;
    /** Pressed by the test itself (from a MockAgent reply callback, say). */
    ctrlC?: CtrlC;
    /** Presses Ctrl-C once, as soon as the output so far satisfies this: an event, never a timer. */
    interruptWhen?: (out: { stdout: string; stderr: string }) => boolean;
  } = {},
): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  const sleeps: number[] = [];
  const stdin = Readable.from(opts.stdin === undefined ? [] : [Buffer.from(opts.stdin)]) as Readable & { isTTY?: boolean };
  stdin.isTTY = opts.stdinTTY ?? false;
  const ctrlC = opts.ctrlC ?? new CtrlC();
  let fired = false;
  const check = () => {
    if (!fired && opts.interruptWhen?.({ stdout, stderr })) {
      fired = true;
      ctrlC.press();
    }
  };
  const io: Io = {
    stdout: { write: (s: string) => ((stdout += s), check()), isTTY: opts.stdoutTTY ?? false },
    stderr: { write: (s: string) => ((stderr += s), check()), isTTY: opts.stderrTTY ?? false },
    stdin,
    env: opts.env ?? {},
    cwd: opts.cwd ?? mkdtempSync(join(tmpdir(), "tftcache-cli-")),
    onInterrupt(listener) {
      return ctrlC.listen(listener);
    },
  };
  const code = await run(argv, io, {
    ...(opts.agent ? { dispatcher: opts.agent } : {}),
    sleep: async (ms) => {
      sleeps.push(ms);
    },
  });
  return { code, stdout, stderr, sleeps };
}

/** Global flags that point every client at the mocks. */
export const target = ["--url", WORKER, "--api-key", ADMIN_KEY, "--account-id", ACCOUNT, "--api-token", CF_TOKEN, "--namespace-id", NS, "--cf-api-base", CF];

export const json = { headers: { "content-type": "application/json" } };
export const ok = (data: unknown) => ({ success: true, data });

export function tempDir(files: Record<string, string> = {}): string {
  const dir = mkdtempSync(join(tmpdir(), "tftcache-cfg-"));
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text);
  return dir;
}

export function expectNoSecrets(r: CliRun): void {
  for (const secret of [ADMIN_KEY, CF_TOKEN]) {
    if (r.stdout.includes(secret) || r.stderr.includes(secret)) throw new Error(`secret leaked into output:\n${r.stdout}\n${r.stderr}`);
  }
}
