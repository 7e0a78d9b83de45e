import type { CommandContext } from "../context.js";
import { SYMBOL, type KeyVerdict } from "../compare.js";
import { EXIT } from "../errors.js";
import { buildSyncReport, type SyncReport } from "../sync-report.js";
import { displayKey, safeText } from "../terminal-safe.js";

const COLOR: Record<KeyVerdict, "green" | "yellow" | "cyan" | "red"> = { match: "green", differ: "yellow", onlyInDo: "cyan", onlyInKv: "red" };

export function printItems(ctx: CommandContext, report: SyncReport): void {
  const c = ctx.out.chalk;
  for (const item of report.items) {
    const detail = item.fields ? c.dim(`  (${item.fields.join(", ")})`) : "";
    ctx.out.print(`${c[COLOR[item.status]](SYMBOL[item.status])} ${displayKey(item.key)}${detail}`);
  }
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
    printItems(ctx, report);
    printCounts(ctx, report);
    for (const p of report.problems) ctx.out.note(`${ctx.out.chalk.yellow("drift:")} ${safeText(p)}`);
  }
  return report.status === "match" ? EXIT.OK : EXIT.DRIFT;
}
