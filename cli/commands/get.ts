import { findLive, type EntryView } from "../../protocol/index.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { inspectKv } from "../kv-inspect.js";
import { formatRelative } from "../output.js";
import { quoted, safeJson } from "../terminal-safe.js";

async function fromKv(ctx: CommandContext, key: string): Promise<EntryView | null> {
  const kv = await inspectKv(ctx.kv(), { stats: false });
  if (kv.entries.state === "missing") throw new CliError("do_cache_entries is missing from KV", { exitCode: EXIT.DRIFT, hint: "the DO has not flushed yet, or KV was cleared: `tftcache flush`" });
  if (kv.entries.state === "unreadable") throw new CliError(`do_cache_entries in KV is unreadable: ${kv.entries.error}`, { exitCode: EXIT.DRIFT });
  // Never serve from a torn snapshot: the Worker's KV fallback does not either (protocol/snapshot-read).
  if (kv.entries.state === "torn") {
    throw new CliError(`do_cache_entries in KV is torn (${kv.entries.error}): not served`, { exitCode: EXIT.DRIFT, hint: "`tftcache verify-kv` shows what differs; `tftcache flush` replaces the snapshot" });
  }
  const entry = findLive(kv.snapshot!, key, Date.now());
  return entry ? { key, ...entry } : null;
}

/** `get <key>`: the value on stdout (pretty JSON), details on stderr; `--json` for the whole entry. */
export async function getCommand(ctx: CommandContext, key: string, opts: { from?: string }): Promise<number> {
  const source = opts.from ?? "do";
  if (source !== "do" && source !== "kv") throw new CliError(`--from must be do or kv (got ${JSON.stringify(source)})`);
  const entry = source === "kv" ? await fromKv(ctx, key) : await ctx.admin().get(key);
  if (!entry) {
    if (ctx.out.json) ctx.out.document({ key, found: false, source });
    ctx.out.note(`${quoted(key)} not found in ${source === "kv" ? "the KV snapshot" : "the DO"} (absent or expired)`);
    return EXIT.DRIFT;
  }
  if (ctx.out.json) {
    ctx.out.document({ ...entry, found: true, source });
    return EXIT.OK;
  }
  // Still valid JSON for the same value (pipe it to jq), but a control character inside a string is an escape.
  ctx.out.print(safeJson(entry.value, 2));
  ctx.out.note(ctx.out.chalk.dim(`expires ${formatRelative(entry.expiresAt)} · cached ${formatRelative(entry.cachedAt)} · read ${formatRelative(entry.lastAccessed)} · from ${source}`));
  return EXIT.OK;
}
