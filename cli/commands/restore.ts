import { randomBytes } from "node:crypto";
import { MAX_SEED_ENTRIES, snapshotEntryBytes, type EntriesSnapshot, type FlushResult, type RestoreResult } from "../../protocol/index.js";
import { checkRestoreBounds } from "../bounds.js";
import { confirmDestructive } from "../confirm.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT, InterruptedError } from "../errors.js";
import { AdminApiError, type AdminClient } from "../http/admin-client.js";
import { REQUEST_MAX_BYTES, decodeUtf8, packBatches, readInputBytes } from "../input.js";
import { verifySnapshotCanonical } from "../kv-inspect.js";
import { formatBytes, formatRelative } from "../output.js";
import { buildSyncReport, type SyncReport } from "../sync-report.js";
import { safeText } from "../terminal-safe.js";
import { printVerifyReport } from "./verify-kv.js";

/** `{"stage":"…","entries":[` … `]}` around a chunk's pairs. */
const STAGE_BODY_OVERHEAD = 100;

/** A fresh stage id: 1–64 characters of [A-Za-z0-9_-], unique enough that two restores never share one. */
export const newStageId = (): string => `cli-${Date.now().toString(36)}-${randomBytes(8).toString("hex")}`;

/** One `[key, {value, expiresAt, lastAccessed, cachedAt, freshUntil?}]` pair as JSON text, the value already canonical. */
function pairJson(key: string, e: EntriesSnapshot["entries"][number][1], canonical: string): string {
  const fresh = e.freshUntil === undefined ? "" : `,"freshUntil":${JSON.stringify(e.freshUntil)}`;
  return `[${JSON.stringify(key)},{"value":${canonical},"expiresAt":${JSON.stringify(e.expiresAt)},"lastAccessed":${JSON.stringify(e.lastAccessed)},"cachedAt":${JSON.stringify(e.cachedAt)}${fresh}}]`;
}

/** Best effort: a stage left behind is invisible to the cache and the DO discards it after an hour anyway. */
async function discard(ctx: CommandContext, admin: AdminClient, stage: string): Promise<string> {
  try {
    await admin.abortRestore(stage);
    return "the staged upload was discarded";
  } catch (err) {
    ctx.out.warn(`could not discard the staged upload ${stage}: ${safeText((err as Error).message)} (the Worker discards it within an hour)`);
    return "the staged upload will be discarded by the Worker within an hour";
  }
}

/**
 * `restore FILE`: replaces the cache's whole contents with an export, atomically. The file's digest is checked
 * first; its entries are uploaded in chunks to a stage the cache cannot see (POST /restore {stage, entries}); one
 * commit ({stage, commit: {digest, count}}) makes the Worker check what it holds against the file's digest and
 * count and swap it in, in one transaction. A failure or Ctrl-C before the commit discards the stage: the cache
 * keeps its old contents. After the commit, KV is flushed and checked exactly as `verify-kv` checks it.
 */
export async function restoreCommand(ctx: CommandContext, source: string, opts: { yes?: boolean; allowEviction?: boolean }): Promise<number> {
  const name = source === "-" ? "stdin" : source;
  const text = decodeUtf8(await readInputBytes(ctx, source, "restore"), name);
  const verified = await verifySnapshotCanonical(text);
  if (!verified.ok && verified.status === "corrupt") {
    const ndjson = /^\s*\{[^\n]*\}\s*\n\s*\{/.test(text);
    throw new CliError(`${name} is not a tftcache export: ${verified.reason}`, {
      hint: ndjson ? "restore reads the snapshot format `tftcache export` writes (not --ndjson); to load NDJSON entries use `tftcache seed`" : "restore reads what `tftcache export` writes (a do_cache_entries snapshot with its digest)",
    });
  }
  if (!verified.ok) throw new CliError(`${name} does not match its own digest (${verified.reason}): it was altered or truncated; nothing was sent`);
  const { snapshot, canonical } = verified;
  const count = snapshot.entries.length;

  const admin = ctx.admin();
  const [meta, stats] = await Promise.all([admin.metadata(), admin.stats()]);
  const now = Date.now();
  let liveEntries = 0;
  let liveBytes = 0;
  snapshot.entries.forEach(([key, e], i) => {
    if (e.expiresAt <= now) return;
    liveEntries++;
    liveBytes += snapshotEntryBytes(key, canonical[i]!, e.freshUntil !== undefined);
  });
  const bounds = checkRestoreBounds(meta, liveEntries, liveBytes);
  if (bounds.exceeded.length > 0) {
    const what = bounds.exceeded.join("; and ");
    if (!opts.allowEviction) {
      throw new CliError(`refusing to restore ${name}: ${what}, so the restore would leave entries out at once`, {
        hint: "raise CACHE_MAX_ENTRIES / CACHE_MAX_BYTES in the wrangler config, or pass --allow-eviction to keep the most recently used entries",
      });
    }
    ctx.out.warn(`${what}: the least recently used entries will be left out (--allow-eviction)`);
  }
  const expired = count - liveEntries;
  const question = `Replace the whole cache at ${ctx.settings.url} (${stats.size} entries, generation ${stats.generation}) with ${name}'s ${count} entries (generation ${snapshot.generation}, written ${formatRelative(snapshot.writtenAt, now)}${expired ? `; ${expired} of them already expired and skipped` : ""})`;
  if (!(await confirmDestructive(ctx, { yes: opts.yes, action: "restore", question }))) {
    ctx.out.note("aborted; nothing was changed");
    return EXIT.ERROR;
  }

  const pairs = snapshot.entries.map(([key, e], i) => pairJson(key, e, canonical[i]!));
  const chunks = packBatches(pairs.map((p) => Buffer.byteLength(p)), MAX_SEED_ENTRIES, REQUEST_MAX_BYTES, STAGE_BODY_OVERHEAD);
  const stage = newStageId();
  let interrupted = false;
  let committing = false;
  const off = ctx.io.onInterrupt(() => {
    if (committing) ctx.out.note("interrupt: the commit is already in flight and cannot be stopped; waiting for it…");
    else if (!interrupted) ctx.out.note("interrupt: stopping after the chunk in flight; the cache keeps its old contents…");
    interrupted = true;
  });
  ctx.out.note(`uploading ${count} entr${count === 1 ? "y" : "ies"} in ${chunks.length} chunk${chunks.length === 1 ? "" : "s"} to stage ${stage} (invisible to the cache until the commit)…`);
  let result: RestoreResult;
  try {
    let staged = 0;
    for (const [i, chunk] of chunks.entries()) {
      if (interrupted) break;
      ctx.out.progress(`uploading ${staged}/${count} entries (chunk ${i + 1} of ${chunks.length}, ${formatBytes(chunk.bytes)})…`);
      let answer;
      try {
        answer = await admin.stageRestore(stage, pairs.slice(chunk.start, chunk.end));
      } catch (err) {
        ctx.out.endProgress();
        const done = await discard(ctx, admin, stage);
        const message = err instanceof CliError ? err.message : (err as Error).message;
        throw new CliError(`restore failed while uploading chunk ${i + 1} of ${chunks.length}: ${message}; nothing was restored, the cache keeps its old contents (${done})`, { ...(err instanceof CliError && err.hint ? { hint: err.hint } : {}), cause: err });
      }
      staged += chunk.end - chunk.start;
      if (answer.staged !== staged) {
        const done = await discard(ctx, admin, stage);
        throw new CliError(`the Worker holds ${answer.staged} staged entries after chunk ${i + 1}, not ${staged}; nothing was restored (${done})`);
      }
    }
    ctx.out.endProgress();
    if (interrupted) {
      const done = await discard(ctx, admin, stage);
      throw new InterruptedError(`interrupted: nothing was restored; the cache keeps its old contents (${done})`);
    }
    committing = true;
    try {
      result = await admin.commitRestore(stage, { digest: snapshot.digest, count });
    } catch (err) {
      const mismatch = err instanceof AdminApiError && (err.status === 400 || err.status === 409);
      const done = mismatch ? await discard(ctx, admin, stage) : "";
      const message = err instanceof CliError ? err.message : (err as Error).message;
      throw new CliError(`the commit failed: ${message}${mismatch ? `; nothing was changed (${done})` : ""}`, { ...(err instanceof CliError && err.hint ? { hint: err.hint } : {}), cause: err });
    }
  } finally {
    off();
    ctx.out.endProgress();
  }

  const c = ctx.out.chalk;
  const sameDigest = result.digest === snapshot.digest;
  const restoredLine = `${c.green("restored")} ${result.restored} entr${result.restored === 1 ? "y" : "ies"} from ${name} (generation ${result.generation}, ${result.digest})${
    result.skippedExpired ? `, ${result.skippedExpired} expired skipped` : ""
  }${result.evicted ? `, ${c.yellow(`${result.evicted} left out by the cache's bounds`)}` : ""}; ${sameDigest ? "digest equals the file's" : "digest differs from the file's because entries were skipped or left out"}`;
  if (!ctx.out.json) ctx.out.print(restoredLine);

  // Then KV: flushed now (an operator action, so it may spend the reserve), and checked as verify-kv checks it.
  let flush: FlushResult | null = null;
  let flushError: string | null = null;
  try {
    flush = await admin.flush();
    if (!flush.written) flushError = flush.error ?? "unknown reason";
  } catch (err) {
    flushError = (err as Error).message;
  }
  if (!ctx.out.json) {
    if (flushError) ctx.out.warn(`flush after restore: the Worker did not write KV: ${safeText(flushError)} (the next scheduled flush will)`);
    else ctx.out.print(`flushed generation ${flush!.generation} to KV; checking it as verify-kv does:`);
  }
  let report: SyncReport | null = null;
  let verifyError: string | null = null;
  try {
    report = await buildSyncReport(ctx, { requireStats: true, includeMatches: false });
  } catch (err) {
    verifyError = (err as Error).message;
  }
  if (ctx.out.json) {
    ctx.out.document({ file: { name, entries: count, generation: snapshot.generation, digest: snapshot.digest }, stage, restore: result, flush, flushError, verify: report, verifyError });
  } else if (report) printVerifyReport(ctx, report);
  else ctx.out.warn(`verify-kv could not run: ${safeText(verifyError ?? "")} (the restore itself is committed; run \`tftcache verify-kv\`)`);
  if (verifyError) return EXIT.ERROR;
  return report!.status === "match" ? EXIT.OK : EXIT.DRIFT;
}
