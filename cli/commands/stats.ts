import type { CacheStats } from "../../protocol/index.js";
import type { CommandContext } from "../context.js";
import { EXIT } from "../errors.js";
import { FLAG_BOUNDS, parseNumberFlag } from "../flags.js";
import { formatBytes, formatRelative } from "../output.js";
import { safeText } from "../terminal-safe.js";

function statsRows(ctx: CommandContext, s: CacheStats): Array<[string, string | number]> {
  const c = ctx.out.chalk;
  const now = Date.now();
  return [
    ["entries", s.size],
    ["bytes", formatBytes(s.bytes)],
    ["hits / misses", `${s.hits} / ${s.misses}`],
    ["hit rate", `${(s.hitRate * 100).toFixed(1)}%`],
    ["evictions", s.evictions],
    ["expirations", s.expirations],
    ["generation", s.generation],
    ["oldest / newest", `${formatRelative(s.oldestEntry, now)} / ${formatRelative(s.newestEntry, now)}`],
    ["kv mode", s.kv.mode],
    ["kv last flush", formatRelative(s.kv.lastFlushAt, now)],
    ["kv pending since", s.kv.pendingSince ? c.yellow(formatRelative(s.kv.pendingSince, now)) : c.green("in sync")],
    ["kv writes today", `${s.kv.writesToday} / ${s.kv.budget}`],
    ["kv last error", s.kv.lastError ? c.red(safeText(s.kv.lastError)) : "none"],
    ...pacingRows(ctx, s, now),
  ];
}

/** How scheduled flushes are spread over the day: the interval now, the next flush, and any forecast. */
function pacingRows(ctx: CommandContext, s: CacheStats, now: number): Array<[string, string]> {
  const p = s.kv.pacing;
  if (!p) return [];
  const c = ctx.out.chalk;
  const secs = (ms: number) => (Number.isFinite(ms) ? `${Math.round(ms / 100) / 10}s` : "never");
  const rows: Array<[string, string]> = [
    ["kv flush interval", p.paced ? c.yellow(`${secs(p.intervalMs)} (paced by the budget; base ${secs(p.baseIntervalMs)})`) : `${secs(p.intervalMs)}`],
    ["kv next flush", p.nextFlushAt === null ? "nothing owed" : formatRelative(p.nextFlushAt, now)],
    ["kv reserve", `${p.reserve} writes kept for flush/clear by an operator`],
  ];
  if (p.budgetExhaustsAt !== null) rows.push(["kv budget runs out", c.red(formatRelative(p.budgetExhaustsAt, now))]);
  if (s.kv.writable === false) rows.push(["kv writable", c.red("no: KV cannot be written now")]);
  return rows;
}

const WATCH_COLUMNS = ["entries", "bytes", "hits", "misses", "hit%", "gen", "kv-writes", "kv"];

function watchLine(s: CacheStats): string {
  const cells = [s.size, formatBytes(s.bytes), s.hits, s.misses, `${(s.hitRate * 100).toFixed(1)}`, s.generation, `${s.kv.writesToday}/${s.kv.budget}`, s.kv.lastError ? "error" : s.kv.pendingSince ? "pending" : "synced"];
  return cells.map((c, i) => String(c).padEnd(Math.max(WATCH_COLUMNS[i]!.length, 8))).join(" ");
}

/**
 * `stats`: one table; `--watch [s]`: a line per interval like `redis-cli --stat` (NDJSON with --json), until
 * Ctrl-C, which exits 130. The interval is bounded (FLAG_BOUNDS.watchSeconds): `--watch 0.00001` would be a
 * request storm against the Worker, not a dashboard.
 */
export async function statsCommand(ctx: CommandContext, opts: { watch?: string | boolean }): Promise<number> {
  const watching = opts.watch !== undefined && opts.watch !== false;
  const seconds = !watching ? 0 : opts.watch === true ? 2 : parseNumberFlag("--watch", opts.watch as string, FLAG_BOUNDS.watchSeconds);
  const admin = ctx.admin();
  if (!watching) {
    const stats = await admin.stats();
    if (ctx.out.json) ctx.out.document(stats);
    else ctx.out.print(ctx.out.pairs(statsRows(ctx, stats)));
    return EXIT.OK;
  }
  let stopped = false;
  let wake: (() => void) | undefined;
  const off = ctx.io.onInterrupt(() => {
    stopped = true;
    wake?.();
  });
  // Ctrl-C ends the wait at once and clears the timer, so the process exits instead of idling to the next tick.
  const sleep =
    ctx.run.sleep ??
    ((ms: number) =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, ms);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      }));
  try {
    if (!ctx.out.json) ctx.out.print(ctx.out.chalk.bold(WATCH_COLUMNS.map((c) => c.padEnd(8)).join(" ")));
    for (let i = 0; !stopped; i++) {
      const stats = await admin.stats();
      if (ctx.out.json) ctx.out.jsonLine({ at: Date.now(), ...stats });
      else ctx.out.print(watchLine(stats));
      if (!ctx.out.json && i > 0 && i % 20 === 0) ctx.out.print(ctx.out.chalk.bold(WATCH_COLUMNS.map((c) => c.padEnd(8)).join(" ")));
      if (!stopped) await sleep(seconds * 1000);
    }
  } finally {
    off();
  }
  return EXIT.INTERRUPTED;
}
