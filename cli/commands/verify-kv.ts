import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { FLAG_BOUNDS, parseNumberFlag } from "../flags.js";
import { formatRelative } from "../output.js";
import { buildSyncReport, type SyncReport } from "../sync-report.js";
import { safeText } from "../terminal-safe.js";
import { printItems } from "./diff.js";

/** verify-kv's human report: both keys, the DO, the counts, the first differing keys, and the verdict. */
export function printVerifyReport(ctx: CommandContext, report: SyncReport, all = false): void {
  const c = ctx.out.chalk;
  const e = report.kv.entries;
  const s = report.kv.stats;
  const state = (st: string) => (st === "present" ? c.green(st) : c.red(st));
  const rows: Array<[string, string | number]> = [
    ["do_cache_entries", `${state(e.state)}${e.generation !== undefined ? `, generation ${e.generation}, ${e.entries} entries, written ${formatRelative(e.writtenAt)}` : ""}`],
    ["do_cache_stats", `${state(s.state)}${s.generation !== undefined ? `, generation ${s.generation}` : ""}`],
    ["DO", `generation ${report.do.generation}, ${report.do.entries} entries`],
    ["entries", `${report.counts.match} match, ${report.counts.differ} differ, ${report.counts.onlyInDo} only in DO, ${report.counts.onlyInKv} only in KV`],
  ];
  if (report.kv.lag) rows.push(["lag", `${report.kv.lag.generations} generation(s), ${report.kv.lag.seconds}s${report.kv.lag.tolerated ? " (within --max-lag-seconds)" : ""}`]);
  ctx.out.print(ctx.out.pairs(rows));
  printItems(ctx, report, all);
  if (report.status === "match") ctx.out.print(c.green("verify-kv: OK, KV matches the DO"));
  else {
    ctx.out.print(c.red(`verify-kv: DRIFT`));
    for (const p of report.problems) ctx.out.print(`  - ${safeText(p)}`);
  }
}

/**
 * `verify-kv`: the CI gate. Both keys present and readable, the digest intact, stats consistent with entries,
 * and entries equal to the DO's (within --max-lag-seconds when given). 0 in sync, 1 drift, 2 could not check.
 */
export async function verifyKvCommand(ctx: CommandContext, opts: { flush?: boolean; maxLagSeconds?: string; all?: boolean; full?: boolean }): Promise<number> {
  const maxLag = opts.maxLagSeconds === undefined ? undefined : parseNumberFlag("--max-lag-seconds", opts.maxLagSeconds, FLAG_BOUNDS.maxLagSeconds);
  if (opts.flush) {
    const flushed = await ctx.admin().flush();
    if (!flushed.written) throw new CliError(`--flush: the Worker did not write KV: ${flushed.error ?? "unknown reason"}`);
    ctx.out.note(flushed.upToDate ? `KV already held generation ${flushed.generation}: nothing written` : `flushed generation ${flushed.generation}`);
  }
  const report = await buildSyncReport(ctx, { requireStats: true, includeMatches: false, full: opts.full === true, ...(maxLag === undefined ? {} : { maxLagSeconds: maxLag }) });
  if (ctx.out.json) ctx.out.document(report);
  else printVerifyReport(ctx, report, opts.all === true);
  return report.status === "match" ? EXIT.OK : EXIT.DRIFT;
}
