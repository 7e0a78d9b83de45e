import { CommanderError } from "commander";
import type { RunOptions } from "./context.js";
import { CliError, EXIT } from "./errors.js";
import { processIo, type Io } from "./io.js";
import { buildProgram } from "./program.js";
import { createRedactor } from "./redact.js";
import { safeLines, safeText } from "./terminal-safe.js";

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
  const result: Parameters<typeof buildProgram>[2] = { exitCode: EXIT.OK };
  const program = buildProgram(io, runOptions, result);
  const verbose = argv.includes("--verbose");
  const redactRaw = createRedactor(rawSecrets(argv, io.env));
  // Commander echoes argv in its errors (an unknown option, a bad argument): escape it like any other text.
  const writeErr = (text: string) => io.stderr.write(safeLines(redactRaw(text)));
  program.exitOverride();
  for (const cmd of [program, ...program.commands]) {
    cmd.exitOverride();
    cmd.configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr, outputError: (s, write) => write(s) });
  }
  try {
    await program.parseAsync(argv, { from: "user" });
    return result.exitCode;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === "commander.helpDisplayed" || err.code === "commander.version" || err.code === "commander.help") return EXIT.OK;
      // Commander already printed the message; usage errors are 2 so CI can tell them from drift.
      return EXIT.ERROR;
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
    return EXIT.ERROR;
  }
}

/** The process entry used by bin/tftcache. */
export async function main(): Promise<void> {
  const io = processIo();
  // stdout closed early (`tftcache list | head`) is not an error.
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code === "EPIPE") process.exit(EXIT.OK);
  });
  process.exitCode = await run(process.argv.slice(2), io);
}
