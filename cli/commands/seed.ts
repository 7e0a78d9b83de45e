import { checkSeedBounds } from "../bounds.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT, InterruptedError } from "../errors.js";
import { FLAG_BOUNDS, parseNumberFlag } from "../flags.js";
import { AdminApiError } from "../http/admin-client.js";
import { REQUEST_MAX_BYTES, decodeUtf8, packBatches, readInputBytes } from "../input.js";
import { formatBytes } from "../output.js";
import { SeedFormatError, entryCost, entryJson, parseSeedInput, type SeedReject } from "../seed-input.js";
import { quoted, safeText } from "../terminal-safe.js";

/** `{"entries":[` … `],"flush":false}` around a batch's elements. */
const SEED_BODY_OVERHEAD = 32;

/**
 * `seed <file|->`: validates every entry locally with the Worker's own rules, reports rejects by line or index,
 * and sends the valid ones in batches (each batch atomic on the Worker) bounded by count (`--batch`) and by bytes
 * (REQUEST_MAX_BYTES, well under the Worker's 10 MiB body limit), so any size of input goes through. Before
 * sending, it asks the Worker for its bounds (`/metadata`) and refuses a seed that would make the LRU evict at
 * once, unless --allow-eviction. Ctrl-C stops after the batch in flight and says how many entries were written
 * (exit 130).
 */
export async function seedCommand(
  ctx: CommandContext,
  source: string,
  opts: { ttl?: string; batch?: string; dryRun?: boolean; flush?: boolean; allowEviction?: boolean },
): Promise<number> {
  const defaultTtl = opts.ttl === undefined ? undefined : parseNumberFlag("--ttl", opts.ttl, FLAG_BOUNDS.ttlSeconds);
  const batchSize = opts.batch === undefined ? 1000 : parseNumberFlag("--batch", opts.batch, FLAG_BOUNDS.batch);
  const name = source === "-" ? "stdin" : source;
  const text = decodeUtf8(await readInputBytes(ctx, source, "seed"), name);
  let parsed;
  try {
    parsed = parseSeedInput(text, defaultTtl === undefined ? {} : { defaultTtl });
  } catch (err) {
    if (err instanceof SeedFormatError) throw new CliError(`${name}: ${err.message}`);
    throw err;
  }
  let { entries } = parsed;
  const rejects = [...parsed.rejects];
  const reportRejects = (list: SeedReject[]) => {
    // A reason can quote the input (JSON.parse's messages do): escaped like the key.
    for (const r of list.slice(0, 20)) ctx.out.note(`${ctx.out.chalk.red("rejected")} ${r.where}${r.key !== undefined ? ` (${quoted(r.key)})` : ""}: ${safeText(r.reason)}`);
    if (list.length > 20) ctx.out.note(`… and ${list.length - 20} more rejected`);
  };
  const plan = () => {
    const json = entries.map(entryJson);
    return { json, batches: packBatches(json.map((j) => Buffer.byteLength(j)), batchSize, REQUEST_MAX_BYTES, SEED_BODY_OVERHEAD) };
  };

  if (opts.dryRun) {
    const { batches } = plan();
    reportRejects(rejects);
    const summary = { dryRun: true, format: parsed.format, valid: entries.length, rejected: rejects.length, expired: parsed.expired, batches: batches.length, rejects };
    if (ctx.out.json) ctx.out.document(summary);
    else ctx.out.print(`dry run: ${entries.length} valid entries in ${summary.batches} batch(es), ${rejects.length} rejected${parsed.expired ? `, ${parsed.expired} expired skipped` : ""}; nothing sent`);
    return rejects.length > 0 ? EXIT.ERROR : EXIT.OK;
  }

  const admin = ctx.admin();
  // The Worker's bounds, before anything is sent.
  const meta = await admin.metadata();
  const tooBig = entries.filter((e) => entryCost(e) > meta.limits.maxBytes);
  if (tooBig.length > 0) {
    const where = new Map(entries.map((e, i) => [e, i]));
    for (const e of tooBig) rejects.push({ where: `entry ${where.get(e)}`, key: e.key, reason: `entry costs ${entryCost(e)} bytes in the KV snapshot, more than the cache holds at all (CACHE_MAX_BYTES ${meta.limits.maxBytes})` });
    entries = entries.filter((e) => entryCost(e) <= meta.limits.maxBytes);
  }
  const costs = new Map<string, number>();
  for (const e of entries) costs.set(e.key, entryCost(e));
  const bounds = await checkSeedBounds(admin, meta, costs);
  if (bounds.exceeded.length > 0) {
    const what = bounds.exceeded.join("; and ");
    // Refused: a seed bigger than the cache loses some of its own entries the moment they are written. A seed
    // that fits but fills the cache evicts older entries, least recently used first, as any write to a full LRU
    // does: it goes ahead, said beforehand and counted in the summary.
    if (bounds.selfEvicting && !opts.allowEviction) {
      throw new CliError(`refusing to seed ${entries.length} entr${entries.length === 1 ? "y" : "ies"}: ${what}, so the cache would evict some of them as soon as they are written`, {
        hint: "raise CACHE_MAX_ENTRIES / CACHE_MAX_BYTES in the wrangler config, seed fewer entries, or pass --allow-eviction to let the least recently used entries go",
      });
    }
    ctx.out.warn(`${what}: the least recently used entries will be evicted${bounds.selfEvicting ? " (--allow-eviction)" : ""}`);
  }

  const { json, batches } = plan();
  let interrupted = false;
  const off = ctx.io.onInterrupt(() => {
    if (!interrupted) ctx.out.note("interrupt: stopping after the batch in flight…");
    interrupted = true;
  });
  // After the handler is in place: from this line on, Ctrl-C stops cleanly between batches.
  if (entries.length > 0) {
    const n = batches.length;
    ctx.out.note(`sending ${entries.length} entr${entries.length === 1 ? "y" : "ies"} in ${n} batch${n === 1 ? "" : "es"} of up to ${batchSize}…`);
  }
  let written = 0;
  let evicted = 0;
  let generation: number | undefined;
  let flushed: unknown;
  try {
    for (const [i, b] of batches.entries()) {
      if (interrupted) break;
      const last = i === batches.length - 1;
      ctx.out.progress(`seeding ${written}/${entries.length} (batch ${i + 1} of ${batches.length}, ${formatBytes(b.bytes)})…`);
      try {
        const result = await admin.seedJson(json.slice(b.start, b.end), opts.flush === true && last);
        written += result.applied;
        evicted += result.evicted ?? 0;
        generation = result.generation;
        if (result.flush) flushed = result.flush;
      } catch (err) {
        ctx.out.endProgress();
        if (err instanceof AdminApiError && err.status === 400) {
          throw new CliError(`the Worker rejected batch ${i + 1} (${written} of ${entries.length} entries already written): ${err.message}`);
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
  const summary = { written, evicted, rejected: rejects.length, expired: parsed.expired, generation: generation ?? null, format: parsed.format, batches: batches.length, flush: flushed ?? null, rejects };
  if (ctx.out.json) ctx.out.document(summary);
  else {
    const c = ctx.out.chalk;
    const parts = [`${c.green("seeded")} ${written} entr${written === 1 ? "y" : "ies"}`];
    if (evicted > 0) parts.push(c.yellow(`${evicted} evicted by the cache's bounds (CACHE_MAX_ENTRIES ${meta.limits.maxEntries}, CACHE_MAX_BYTES ${meta.limits.maxBytes})`));
    if (rejects.length) parts.push(c.red(`${rejects.length} rejected`));
    if (parsed.expired) parts.push(`${parsed.expired} expired skipped`);
    if (flushed) parts.push("flushed to KV");
    ctx.out.print(parts.join(", "));
  }
  return rejects.length > 0 ? EXIT.ERROR : EXIT.OK;
}
