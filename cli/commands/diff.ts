import type { CommandContext } from "../context.js";
import { SYMBOL, type KeyVerdict } from "../compare.js";
import { EXIT } from "../errors.js";
import { buildSyncReport, type SyncReport } from "../sync-report.js";
import { displayKey, safeText } from "../terminal-safe.js";

const COLOR: Record<KeyVerdict, "green" | "yellow" | "cyan" | "red"> = { match: "green", differ: "yellow", onlyInDo: "cyan", onlyInKv: "red" };

/** How many items human output lists before "… and N more": a CI log stays readable for any size of drift. */
export const ITEMS_SHOWN = 20;

/** The first ITEMS_SHOWN items (all of them with `all`), then how many were left out and how to see them. */
export function printItems(ctx: CommandContext, report: SyncReport, all = false): void {
  const c = ctx.out.chalk;
  const shown = all ? report.items : report.items.slice(0, ITEMS_SHOWN);
  for (const item of shown) {
    const detail = item.fields ? c.dim(`  (${item.fields.join(", ")})`) : "";
    ctx.out.print(`${c[COLOR[item.status]](SYMBOL[item.status])} ${displayKey(item.key)}${detail}`);
  }
  const more = report.items.length - shown.length;
  if (more > 0) ctx.out.print(c.dim(`… and ${more} more (use --all or --json)`));
}

export function printCounts(ctx: CommandContext, report: SyncReport): void {
  const { match, differ, onlyInDo, onlyInKv } = report.counts;
  ctx.out.note(`${match} match (=), ${differ} differ (~), ${onlyInDo} only in DO (+), ${onlyInKv} only in KV (-)`);
}

/** `diff`: the DO snapshot against KV's do_cache_entries, key by key. Exit 1 on any difference. */
export async function diffCommand(ctx: CommandContext, opts: { all?: boolean }): Promise<number> {
  const report = await buildSyncReport(ctx, { requireStats: false, includeMatches: opts.all === true });
  if (ctx.out.json) {
    ctx.out.document(report);
  } else {
    printItems(ctx, report, opts.all === true);
    printCounts(ctx, report);
    for (const p of report.problems) ctx.out.note(`${ctx.out.chalk.yellow("drift:")} ${safeText(p)}`);
  }
  return report.status === "match" ? EXIT.OK : EXIT.DRIFT;
}
