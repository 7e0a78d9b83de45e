import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import type { CommandContext } from "../context.js";
import { CliError, EXIT, InterruptedError } from "../errors.js";
import { FLAG_BOUNDS, parseNumberFlag } from "../flags.js";
import { AdminApiError } from "../http/admin-client.js";
import { SeedFormatError, parseSeedInput, type SeedReject } from "../seed-input.js";
import { quoted, safeText } from "../terminal-safe.js";

async function readInput(ctx: CommandContext, source: string): Promise<string> {
  if (source === "-") {
    if (ctx.io.stdin.isTTY) throw new CliError("seed - reads entries from stdin, but stdin is a terminal", { hint: "pipe a file: tftcache seed - < entries.json" });
    const chunks: Buffer[] = [];
    for await (const chunk of ctx.io.stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
    return Buffer.concat(chunks).toString("utf8");
  }
  try {
    return await readFile(resolve(ctx.io.cwd, source), "utf8");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`cannot read ${source}: ${code === "ENOENT" ? "no such file" : (code ?? (err as Error).message)}`);
  }
}

/**
 * `seed <file|->`: validates every entry locally with the Worker's own rules, reports rejects by line or index,
 * and sends the valid ones in batches (each batch atomic on the Worker). Ctrl-C stops after the batch in flight
 * and says how many entries were written (exit 130).
 */
export async function seedCommand(ctx: CommandContext, source: string, opts: { ttl?: string; batch?: string; dryRun?: boolean; flush?: boolean }): Promise<number> {
  const defaultTtl = opts.ttl === undefined ? undefined : parseNumberFlag("--ttl", opts.ttl, FLAG_BOUNDS.ttlSeconds);
  const batchSize = opts.batch === undefined ? 1000 : parseNumberFlag("--batch", opts.batch, FLAG_BOUNDS.batch);
  const text = await readInput(ctx, source);
  let parsed;
  try {
    parsed = parseSeedInput(text, defaultTtl === undefined ? {} : { defaultTtl });
  } catch (err) {
    if (err instanceof SeedFormatError) throw new CliError(`${source === "-" ? "stdin" : source}: ${err.message}`);
    throw err;
  }
  const { entries, rejects } = parsed;
  const reportRejects = (list: SeedReject[]) => {
    // A reason can quote the input (JSON.parse's messages do): escaped like the key.
    for (const r of list.slice(0, 20)) ctx.out.note(`${ctx.out.chalk.red("rejected")} ${r.where}${r.key !== undefined ? ` (${quoted(r.key)})` : ""}: ${safeText(r.reason)}`);
    if (list.length > 20) ctx.out.note(`… and ${list.length - 20} more rejected`);
  };

  if (opts.dryRun) {
    reportRejects(rejects);
    const summary = { dryRun: true, format: parsed.format, valid: entries.length, rejected: rejects.length, expired: parsed.expired, batches: Math.ceil(entries.length / batchSize), rejects };
    if (ctx.out.json) ctx.out.document(summary);
    else ctx.out.print(`dry run: ${entries.length} valid entries in ${summary.batches} batch(es), ${rejects.length} rejected${parsed.expired ? `, ${parsed.expired} expired skipped` : ""}; nothing sent`);
    return rejects.length > 0 ? EXIT.ERROR : EXIT.OK;
  }

  const admin = ctx.admin();
  let interrupted = false;
  const off = ctx.io.onInterrupt(() => {
    if (!interrupted) ctx.out.note("interrupt: stopping after the batch in flight…");
    interrupted = true;
  });
  const batches = Math.ceil(entries.length / batchSize);
  // After the handler is in place: from this line on, Ctrl-C stops cleanly between batches.
  if (entries.length > 0) ctx.out.note(`sending ${entries.length} entr${entries.length === 1 ? "y" : "ies"} in ${batches} batch${batches === 1 ? "" : "es"} of up to ${batchSize}…`);
  let written = 0;
  let generation: number | undefined;
  let flushed: unknown;
  try {
    for (let start = 0; start < entries.length; start += batchSize) {
      if (interrupted) break;
      const batch = entries.slice(start, start + batchSize);
      const last = start + batchSize >= entries.length;
      ctx.out.progress(`seeding ${written}/${entries.length}…`);
      try {
        const result = await admin.seed(batch, opts.flush === true && last);
        written += result.applied;
        generation = result.generation;
        if (result.flush) flushed = result.flush;
      } catch (err) {
        ctx.out.endProgress();
        if (err instanceof AdminApiError && err.status === 400) {
          throw new CliError(`the Worker rejected batch ${start / batchSize + 1} (${written} of ${entries.length} entries already written): ${err.message}`);
        }
        if (written > 0) ctx.out.note(`${written} of ${entries.length} entries were written before the failure`);
        throw err;
      }
    }
  } finally {
    off();
    ctx.out.endProgress();
  }
  if (interrupted && written < entries.length) {
    throw new InterruptedError(`interrupted: ${written} of ${entries.length} entries written (each batch is atomic; the rest were not sent)`);
  }
  reportRejects(rejects);
  const summary = { written, rejected: rejects.length, expired: parsed.expired, generation: generation ?? null, format: parsed.format, flush: flushed ?? null, rejects };
  if (ctx.out.json) ctx.out.document(summary);
  else ctx.out.print(`${ctx.out.chalk.green("seeded")} ${written} entr${written === 1 ? "y" : "ies"}${rejects.length ? `, ${ctx.out.chalk.red(`${rejects.length} rejected`)}` : ""}${flushed ? ", flushed to KV" : ""}`);
  return rejects.length > 0 ? EXIT.ERROR : EXIT.OK;
}
