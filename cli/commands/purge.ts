import { MAX_LIST_LIMIT } from "../../protocol/index.js";
import { confirmDestructive } from "../confirm.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { displayKey, quoted } from "../terminal-safe.js";
import { ITEMS_SHOWN } from "./diff.js";

/**
 * `purge --prefix P`: every entry whose key starts with P, deleted from memory and SQLite at once and from KV with
 * the next flush (DELETE /entries?prefix=P). Confirmation as `clear`; `--dry-run` lists and counts the keys.
 */
export async function purgeCommand(ctx: CommandContext, opts: { prefix?: string; yes?: boolean; dryRun?: boolean }): Promise<number> {
  const prefix = opts.prefix ?? "";
  if (prefix === "") throw new CliError("--prefix must not be empty", { hint: "to delete every entry, use `tftcache clear --scope do`" });
  const admin = ctx.admin();
  const keys: string[] = [];
  let cursor: string | null = null;
  do {
    const page = await admin.list({ prefix, cursor, limit: MAX_LIST_LIMIT });
    keys.push(...page.keys.map((k) => k.key));
    cursor = page.cursor;
  } while (cursor !== null);
  const target = `${keys.length} entr${keys.length === 1 ? "y" : "ies"} with keys starting ${quoted(prefix)} at ${ctx.settings.url}`;
  if (opts.dryRun) {
    if (ctx.out.json) ctx.out.document({ dryRun: true, prefix, matching: keys.length, keys });
    else {
      for (const key of keys.slice(0, ITEMS_SHOWN)) ctx.out.print(displayKey(key));
      if (keys.length > ITEMS_SHOWN) ctx.out.print(ctx.out.chalk.dim(`… and ${keys.length - ITEMS_SHOWN} more (use --json)`));
      ctx.out.note(`dry run: would delete ${target}`);
    }
    return EXIT.OK;
  }
  if (keys.length === 0) {
    if (ctx.out.json) ctx.out.document({ prefix, deleted: 0, generation: null });
    else ctx.out.print(`nothing to purge: no keys start with ${quoted(prefix)}`);
    return EXIT.OK;
  }
  if (!(await confirmDestructive(ctx, { yes: opts.yes, action: "purge", question: `Delete ${target}` }))) {
    ctx.out.note("aborted; nothing was deleted");
    return EXIT.ERROR;
  }
  const result = await admin.purge(prefix);
  if (ctx.out.json) ctx.out.document(result);
  else ctx.out.print(`${ctx.out.chalk.green("purged")} ${result.deleted} entr${result.deleted === 1 ? "y" : "ies"} with keys starting ${quoted(prefix)} (generation ${result.generation}; KV follows with the next flush)`);
  return EXIT.OK;
}
