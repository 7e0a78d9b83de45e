import { stdoutRole } from "../io.js";
import { randomBytes } from "node:crypto";
import { rename, rm, writeFile } from "node:fs/promises";
import { resolve } from "node:path";
import { ENTRIES_KEY, type EntriesSnapshot } from "../../protocol/index.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { verifySnapshotCanonical } from "../kv-inspect.js";
import { formatBytes } from "../output.js";

/** One NDJSON line of `export --ndjson`: the entry with its absolute times (seed turns expiresAt into a TTL). */
function ndjsonLine(key: string, e: EntriesSnapshot["entries"][number][1], canonical: string): string {
  const fresh = e.freshUntil === undefined ? "" : `,"freshUntil":${JSON.stringify(e.freshUntil)}`;
  return `{"key":${JSON.stringify(key)},"value":${canonical},"expiresAt":${JSON.stringify(e.expiresAt)},"cachedAt":${JSON.stringify(e.cachedAt)},"lastAccessed":${JSON.stringify(e.lastAccessed)}${fresh}}\n`;
}

/**
 * `export [FILE|-] [--from kv] [--ndjson]`: the DO's snapshot (GET /snapshot) or KV's `do_cache_entries`, checked
 * against its own digest, written as a `do_cache_entries` document (what `restore` reads back) or as NDJSON. A file
 * is written whole under a temporary name and then renamed, so an interrupted export never leaves half a backup.
 */
/** Writes and, on a real stream, waits until the text is handed to the OS (an error rejects). */
function writeAll(stream: { write(text: string, cb?: (err?: Error | null) => void): unknown }, text: string): Promise<void> {
  if (stream.write.length < 2) {
    stream.write(text);
    return Promise.resolve();
  }
  return new Promise((resolve, reject) => {
    stream.write(text, (err) => (err ? reject(new CliError(`cannot write the export to stdout: ${err.message}`)) : resolve()));
  });
}

export async function exportCommand(ctx: CommandContext, file: string | undefined, opts: { from?: string; ndjson?: boolean }): Promise<number> {
  const from = opts.from ?? "do";
  if (from !== "do" && from !== "kv") throw new CliError(`--from must be do or kv (got ${JSON.stringify(from)})`);
  const toStdout = file === undefined || file === "-";
  const onDownload = (received: number, total: number | null) =>
    ctx.out.progress(`downloading ${from === "kv" ? ENTRIES_KEY : "the DO snapshot"}: ${formatBytes(received)}${total ? ` of ${formatBytes(total)}` : ""}…`);

  let text: string;
  if (from === "do") {
    // The admin client parses the envelope; the snapshot inside is re-serialised below, byte for byte the same shape.
    text = JSON.stringify(await ctx.admin().snapshot(onDownload));
  } else {
    const value = await ctx.kv().getValue(ENTRIES_KEY, onDownload);
    if (value === null) throw new CliError(`${ENTRIES_KEY} is missing from KV: nothing to export`, { exitCode: EXIT.DRIFT, hint: "the DO has not flushed yet, or KV was cleared: `tftcache flush`, or export from the DO (drop --from kv)" });
    text = value;
  }
  ctx.out.endProgress();
  const verified = await verifySnapshotCanonical(text);
  const source = from === "kv" ? `KV's ${ENTRIES_KEY}` : "the DO's snapshot";
  if (!verified.ok) {
    if (verified.status === "corrupt") throw new CliError(`${source} is unreadable: ${verified.reason}`, { exitCode: from === "kv" ? EXIT.DRIFT : EXIT.ERROR, ...(from === "kv" ? { hint: "`tftcache flush` rewrites it; or export from the DO (drop --from kv)" } : {}) });
    throw new CliError(`${source} is torn (${verified.reason}): refusing to export a backup that would not restore`, { exitCode: from === "kv" ? EXIT.DRIFT : EXIT.ERROR, ...(from === "kv" ? { hint: "`tftcache flush` rewrites it; or export from the DO (drop --from kv)" } : {}) });
  }
  const { snapshot, canonical } = verified;
  let out: string;
  if (opts.ndjson) {
    const lines: string[] = [];
    snapshot.entries.forEach(([key, e], i) => {
      lines.push(ndjsonLine(key, e, canonical[i]!));
      if (i % 1000 === 999) ctx.out.progress(`writing ${i + 1}/${snapshot.entries.length} entries…`);
    });
    out = lines.join("");
  } else out = `${text.trimEnd()}\n`;
  ctx.out.endProgress();

  const bytes = Buffer.byteLength(out);
  const summary = { from, format: opts.ndjson ? "ndjson" : "snapshot", file: toStdout ? "-" : resolve(ctx.io.cwd, file!), entries: snapshot.entries.length, generation: snapshot.generation, writtenAt: snapshot.writtenAt, digest: snapshot.digest, bytes };
  if (toStdout) {
    // The data is the payload: a reader that goes away is an error (main.ts), and success waits for the write.
    stdoutRole.payload = true;
    await writeAll(ctx.io.stdout, out);
  }
  else {
    const target = resolve(ctx.io.cwd, file!);
    const tmp = `${target}.tmp-${randomBytes(4).toString("hex")}`;
    try {
      await writeFile(tmp, out);
      await rename(tmp, target);
    } catch (err) {
      await rm(tmp, { force: true });
      throw new CliError(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
  }
  const line = `exported ${snapshot.entries.length} entr${snapshot.entries.length === 1 ? "y" : "ies"} (generation ${snapshot.generation}, ${snapshot.digest}) from ${from === "kv" ? "KV" : "the DO"} to ${toStdout ? "stdout" : file} (${formatBytes(bytes)}${opts.ndjson ? ", NDJSON" : ""})`;
  // With the data itself on stdout, the summary goes to stderr either way.
  if (ctx.out.json && !toStdout) ctx.out.document(summary);
  else if (toStdout) ctx.out.note(line);
  else ctx.out.print(`${ctx.out.chalk.green("exported")}${line.slice("exported".length)}`);
  return EXIT.OK;
}
