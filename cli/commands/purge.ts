import { MAX_LIST_LIMIT } from "../../protocol/index.js";
import { confirmDestructive } from "../confirm.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { displayKey, quoted } from "../terminal-safe.js";
import { ITEMS_SHOWN } from "./diff.js";

/**
 * `purge --prefix P`: every entry whose key starts with P, deleted from memory and SQLite at once and from KV with
 * the next flush (DELETE /entries?prefix=P). `--soft` keeps them and marks them stale instead (`&mode=soft`): the
 * next getOrSet serves each old value once more while it refreshes it. Confirmation as `clear`; `--dry-run` lists
 * and counts the keys.
 */
export async function purgeCommand(ctx: CommandContext, opts: { prefix?: string; yes?: boolean; dryRun?: boolean; soft?: boolean }): Promise<number> {
  const soft = opts.soft === true;
  const verb = soft ? "mark stale" : "delete";
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
      ctx.out.note(`dry run: would ${verb} ${target}`);
    }
    return EXIT.OK;
  }
  if (keys.length === 0) {
    // No live key matches, but expired rows that stale-if-error keeps (invisible to a listing) may: a hard purge is
    // still sent, without asking, so that none of them is served after an invalidation. It deletes nothing visible.
    const result = soft ? null : await admin.purge(prefix, { soft: false });
    if (ctx.out.json) ctx.out.document(result ?? { prefix, deleted: 0, mode: "soft", marked: 0, generation: null });
    else ctx.out.print(`nothing to purge: no keys start with ${quoted(prefix)}`);
    return EXIT.OK;
  }
  if (!(await confirmDestructive(ctx, { yes: opts.yes, action: "purge", question: `${soft ? "Mark stale" : "Delete"} ${target}` }))) {
    ctx.out.note(`aborted; nothing was ${soft ? "changed" : "deleted"}`);
    return EXIT.ERROR;
  }
  const result = await admin.purge(prefix, { soft });
  if (soft && result.mode !== "soft") {
    // A Worker from before soft purge ignores mode=soft: say plainly what it did instead.
    throw new CliError(`the Worker does not support --soft (it predates soft purge) and deleted ${result.deleted} entries instead`, { hint: "deploy the current tftcache Worker before using purge --soft" });
  }
  if (ctx.out.json) ctx.out.document(result);
  else if (soft) {
    const n = result.marked ?? 0;
    ctx.out.print(`${ctx.out.chalk.green("marked stale")} ${n} entr${n === 1 ? "y" : "ies"} with keys starting ${quoted(prefix)} (generation ${result.generation}; getOrSet refreshes each on its next read; KV follows with the next flush)`);
  } else ctx.out.print(`${ctx.out.chalk.green("purged")} ${result.deleted} entr${result.deleted === 1 ? "y" : "ies"} with keys starting ${quoted(prefix)} (generation ${result.generation}; KV follows with the next flush)`);
  return EXIT.OK;
}
