import { stdoutRole } from "./io.js";
import { CommanderError } from "commander";
import type { RunOptions } from "./context.js";
import type { Io } from "./io.js";
import { buildProgram } from "./program.js";

/**
 * Start-up is part of the interface: `tftcache --version` and `--help` cost about what `node -e 0` does. So this
 * module statically loads only commander and the program's tree; everything an error needs (redaction, terminal
 * escaping, the error classes) is imported when there is an error, and each command loads its own modules.
 */
const EXIT_OK = 0;
const EXIT_ERROR = 2;

/**
 * Secrets as the user may have given them, and trimmed as they are sent, so even a failure before settings
 * resolve stays masked.
 */
function rawSecrets(argv: string[], env: NodeJS.ProcessEnv): string[] {
  const out = [env.TFTCACHE_API_KEY, env.CLOUDFLARE_API_TOKEN].filter((s): s is string => !!s);
  argv.forEach((arg, i) => {
    for (const flag of ["--api-key", "--api-token"]) {
      if (arg === flag && argv[i + 1]) out.push(argv[i + 1]!);
      if (arg.startsWith(`${flag}=`)) out.push(arg.slice(flag.length + 1));
    }
  });
  return [...out, ...out.map((s) => s.trim())];
}

/** Runs the CLI on `argv` (without node and script) and returns the exit code. Never throws. */
export async function run(argv: string[], io: Io, runOptions: RunOptions = {}): Promise<number> {
  const result: Parameters<typeof buildProgram>[2] = { exitCode: EXIT_OK };
  const program = buildProgram(io, runOptions, result);
  const verbose = argv.includes("--verbose");
  // Commander echoes argv in its errors (an unknown option, a bad argument): held here, then redacted and escaped
  // like any other text once the modules that do that are loaded.
  let commanderErr = "";
  const writeErr = (text: string) => {
    commanderErr += text;
  };
  program.exitOverride();
  for (const cmd of [program, ...program.commands]) {
    cmd.exitOverride();
    cmd.configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr, outputError: (s, write) => write(s) });
  }
  let failure: unknown = null;
  try {
    await program.parseAsync(argv, { from: "user" });
  } catch (err) {
    failure = err;
  }
  if (failure === null && commanderErr === "") return result.exitCode;
  // --help and --version end in a CommanderError that is no error at all: done, nothing more to load.
  if (failure instanceof CommanderError && commanderErr === "" && (failure.code === "commander.helpDisplayed" || failure.code === "commander.version" || failure.code === "commander.help")) return EXIT_OK;

  const [{ createRedactor }, { safeLines, safeText }, { CliError }] = await Promise.all([import("./redact.js"), import("./terminal-safe.js"), import("./errors.js")]);
  const redactRaw = createRedactor(rawSecrets(argv, io.env));
  if (commanderErr !== "") io.stderr.write(safeLines(redactRaw(commanderErr)));
  if (failure === null) return result.exitCode;
  const err = failure;
  if (err instanceof CommanderError) {
    if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") return EXIT_OK;
    // Commander already printed the message; usage errors are 2 so CI can tell them from drift.
    return EXIT_ERROR;
  }
  const redact = result.context ? (s: string) => redactRaw(createRedactor([result.context!.settings.apiKey, result.context!.settings.apiToken])(s)) : redactRaw;
  // Messages quote servers and keys: one line each, control characters escaped.
  if (err instanceof CliError) {
    io.stderr.write(`${safeText(redact(`error: ${err.message}`))}\n`);
    if (err.hint) io.stderr.write(`${safeText(redact(`hint: ${err.hint}`))}\n`);
    if (verbose && err.cause instanceof Error && err.cause.stack) io.stderr.write(`${safeLines(redact(err.cause.stack))}\n`);
    return err.exitCode;
  }
  const e = err as Error;
  io.stderr.write(`${safeText(redact(`error: unexpected failure: ${e?.message ?? String(err)}`))}\n`);
  if (verbose && e?.stack) io.stderr.write(`${safeLines(redact(e.stack))}\n`);
  else io.stderr.write("hint: run again with --verbose for details\n");
  return EXIT_ERROR;
}

/** The real process: stdin is touched only when a command reads it (setting it up is a visible start-up cost). */
function processIo(): Io {
  return {
    stdout: process.stdout,
    stderr: process.stderr,
    get stdin() {
      return process.stdin;
    },
    env: process.env,
    cwd: process.cwd(),
    onInterrupt(listener) {
      process.on("SIGINT", listener);
      return () => process.off("SIGINT", listener);
    },
  };
}

/**
 * undici parses HTTP with llhttp compiled to WebAssembly. V8 re-compiles hot wasm with TurboFan on background
 * threads, and node waits for those compiles before it exits: ~150-250 ms of nothing after every command that made
 * a request. Liftoff, V8's baseline wasm compiler, is plenty for parsing a few responses. Set before a command
 * loads undici, and only then: importing node:v8 costs --version and --help ~15 ms they do not need to spend.
 */
async function baselineWasmOnly(): Promise<void> {
  (await import("node:v8")).setFlagsFromString("--liftoff-only");
}

/** The process entry used by bin/tftcache. */
export async function main(): Promise<void> {
  const io = processIo();
  // stdout closed early (`tftcache list | head`) is not an error.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") return;
    if (!stdoutRole.payload) process.exit(EXIT_OK);
    process.stderr.write("error: stdout was closed before the whole export was written (EPIPE): nothing usable was exported\n");
    process.exit(2);
  });
  process.exitCode = await run(process.argv.slice(2), io, { beforeCommand: baselineWasmOnly });
}
