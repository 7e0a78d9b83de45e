import { createInterface } from "node:readline/promises";
import type { CommandContext } from "./context.js";
import { CliError, InterruptedError } from "./errors.js";

/**
 * The confirmation rule of every destructive command (`clear`, `purge`, `restore`): `--yes` goes ahead; a
 * terminal is asked to type "yes"; anything else (a pipe, CI, --json) is refused with exit 2 and what it would
 * have done. Returns false when the user answered something other than "yes".
 */
export async function confirmDestructive(ctx: CommandContext, opts: { yes?: boolean; action: string; question: string }): Promise<boolean> {
  if (opts.yes) return true;
  if (!ctx.io.stdin.isTTY || ctx.out.json) {
    throw new CliError(`refusing to ${opts.action} without --yes when stdin is not a terminal`, { hint: `this would ${opts.question.charAt(0).toLowerCase()}${opts.question.slice(1)}` });
  }
  const rl = createInterface({ input: ctx.io.stdin, output: ctx.io.stderr as NodeJS.WritableStream });
  // Ctrl-C at the prompt (readline's own, on a terminal, or the process's) is a refusal, said as one: exit 130.
  const abort = new AbortController();
  const off = ctx.io.onInterrupt(() => abort.abort());
  try {
    const answer = await rl.question(`${opts.question}? Type "yes" to confirm: `, { signal: abort.signal });
    return answer.trim().toLowerCase() === "yes";
  } catch (err) {
    if (abort.signal.aborted || (err as Error)?.name === "AbortError" || /Ctrl\+C/i.test((err as Error)?.message ?? "")) {
      throw new InterruptedError(`interrupted at the prompt: nothing was done (${opts.action})`);
    }
    throw err;
  } finally {
    off();
    rl.close();
  }
}
