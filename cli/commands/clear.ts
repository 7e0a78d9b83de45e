import type { ClearScope } from "../../protocol/index.js";
import { confirmDestructive } from "../confirm.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { safeText } from "../terminal-safe.js";

const SCOPES: ClearScope[] = ["do", "kv", "all"];
const WHAT: Record<ClearScope, string> = { do: "every entry in the DO (memory and storage)", kv: "both KV snapshot keys", all: "every entry in the DO and both KV snapshot keys" };

/** `clear`: destructive, so it asks on a TTY and refuses (exit 2) without --yes anywhere else. */
export async function clearCommand(ctx: CommandContext, opts: { yes?: boolean; dryRun?: boolean; scope?: string }): Promise<number> {
  const scope = (opts.scope ?? "all") as ClearScope;
  if (!SCOPES.includes(scope)) throw new CliError(`--scope must be one of ${SCOPES.join(", ")} (got ${JSON.stringify(opts.scope)})`);
  const admin = ctx.admin();
  const stats = await admin.stats();
  const target = `${WHAT[scope]} (${stats.size} entries, generation ${stats.generation}) at ${ctx.settings.url}`;
  if (opts.dryRun) {
    if (ctx.out.json) ctx.out.document({ dryRun: true, scope, entries: stats.size, generation: stats.generation });
    else ctx.out.print(`dry run: would delete ${target}`);
    return EXIT.OK;
  }
  if (!(await confirmDestructive(ctx, { yes: opts.yes, action: "clear", question: `Delete ${target}` }))) {
    ctx.out.note("aborted; nothing was deleted");
    return EXIT.ERROR;
  }
  const result = await admin.clear(scope);
  if (ctx.out.json) ctx.out.document(result);
  else {
    ctx.out.print(`${ctx.out.chalk.green("cleared")} ${scope}: ${result.deletedEntries} entries deleted${scope !== "do" ? `, KV keys ${result.kvKeysDeleted ? "deleted" : "NOT deleted"}` : ""}`);
  }
  if (result.kvError) {
    ctx.out.warn(`KV keys could not be deleted: ${safeText(result.kvError)} (the DO will overwrite them on its next flush)`);
    return EXIT.ERROR;
  }
  return EXIT.OK;
}
