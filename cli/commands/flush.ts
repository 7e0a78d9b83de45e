import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../errors.js";

/** `flush`: both KV keys written now (or already current: no write spent); an error (exit 2) if the Worker could not write them. */
export async function flushCommand(ctx: CommandContext): Promise<number> {
  const result = await ctx.admin().flush();
  if (!result.written) {
    throw new CliError(`the Worker did not write KV: ${result.error ?? "unknown reason"}`, { hint: "see `tftcache stats` for the KV write budget and last error" });
  }
  if (ctx.out.json) ctx.out.document(result);
  else if (result.upToDate) ctx.out.print(`${ctx.out.chalk.green("up to date")}: KV already holds generation ${result.generation} (${result.entries} entries, ${result.digest}); nothing written`);
  else ctx.out.print(`${ctx.out.chalk.green("flushed")} generation ${result.generation}, ${result.entries} entries, ${result.digest}`);
  return EXIT.OK;
}
