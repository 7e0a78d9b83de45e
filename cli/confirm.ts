import { createInterface } from "node:readline/promises";
import type { CommandContext } from "./context.js";
import { CliError } from "./errors.js";

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
  const answer = await rl.question(`${opts.question}? Type "yes" to confirm: `);
  rl.close();
  return answer.trim().toLowerCase() === "yes";
}
