import type { CacheStats } from "../../protocol/index.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { formatBytes, formatRelative } from "../output.js";

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
    ["kv last error", s.kv.lastError ? c.red(s.kv.lastError) : "none"],
  ];
}

const WATCH_COLUMNS = ["entries", "bytes", "hits", "misses", "hit%", "gen", "kv-writes", "kv"];

function watchLine(s: CacheStats): string {
  const cells = [s.size, formatBytes(s.bytes), s.hits, s.misses, `${(s.hitRate * 100).toFixed(1)}`, s.generation, `${s.kv.writesToday}/${s.kv.budget}`, s.kv.lastError ? "error" : s.kv.pendingSince ? "pending" : "synced"];
  return cells.map((c, i) => String(c).padEnd(Math.max(WATCH_COLUMNS[i]!.length, 8))).join(" ");
}

/**
 * `stats`: one table; `--watch [s]`: a line per interval like `redis-cli --stat` (NDJSON with --json), until
 * Ctrl-C, which exits 130.
 */
export async function statsCommand(ctx: CommandContext, opts: { watch?: string | boolean }): Promise<number> {
  const admin = ctx.admin();
  if (opts.watch === undefined || opts.watch === false) {
    const stats = await admin.stats();
    if (ctx.out.json) ctx.out.document(stats);
    else ctx.out.print(ctx.out.pairs(statsRows(ctx, stats)));
    return EXIT.OK;
  }
  const seconds = opts.watch === true ? 2 : Number(opts.watch);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new CliError(`--watch takes a positive number of seconds (got ${JSON.stringify(opts.watch)})`);
  let stopped = false;
  let wake: (() => void) | undefined;
  const off = ctx.io.onInterrupt(() => {
    stopped = true;
    wake?.();
  });
  try {
    if (!ctx.out.json) ctx.out.print(ctx.out.chalk.bold(WATCH_COLUMNS.map((c) => c.padEnd(8)).join(" ")));
    for (let i = 0; !stopped; i++) {
      const stats = await admin.stats();
      if (ctx.out.json) ctx.io.stdout.write(`${JSON.stringify({ at: Date.now(), ...stats })}\n`);
      else ctx.out.print(watchLine(stats));
      if (!ctx.out.json && i > 0 && i % 20 === 0) ctx.out.print(ctx.out.chalk.bold(WATCH_COLUMNS.map((c) => c.padEnd(8)).join(" ")));
      await new Promise<void>((resolve) => {
        wake = resolve;
        setTimeout(resolve, seconds * 1000);
      });
    }
  } finally {
    off();
  }
  return EXIT.INTERRUPTED;
}
