import { isUtf8 } from "node:buffer";
import { readFile } from "node:fs/promises";
import { resolve } from "node:path";
import { MAX_BODY_BYTES } from "../protocol/index.js";
import type { CommandContext } from "./context.js";
import { CliError } from "./errors.js";

/**
 * The most one seed or restore request carries: 4 MiB, well under the Worker's 10 MiB body limit (MAX_BODY_BYTES),
 * so a batch of large values is never refused (413) or cut off mid-upload, and the Worker parses it comfortably.
 */
export const REQUEST_MAX_BYTES = Math.floor(MAX_BODY_BYTES * 0.4);

/**
 * Offset of the first byte that does not start or continue a well-formed UTF-8 sequence (RFC 3629: no overlong
 * forms, no surrogates, nothing above U+10FFFF), or -1 when every byte is valid.
 */
export function firstInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length;
  let i = 0;
  while (i < n) {
    const b = bytes[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    let need: number;
    let lo = 0x80;
    let hi = 0xbf;
    if (b >= 0xc2 && b <= 0xdf) need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b === 0xe0) lo = 0xa0;
      if (b === 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b === 0xf0) lo = 0x90;
      if (b === 0xf4) hi = 0x8f;
    } else return i;
    for (let k = 1; k <= need; k++) {
      const c = bytes[i + k];
      if (c === undefined) return i;
      if (k === 1 ? c < lo || c > hi : c < 0x80 || c > 0xbf) return i;
    }
    i += need + 1;
  }
  return -1;
}

/**
 * The bytes as text. Invalid UTF-8 is an error naming the line and byte, never silently replaced (`café` must
 * not become `caf�` in the cache); a UTF-8 byte order mark is skipped, as wrangler and most JSON tools do.
 */
export function decodeUtf8(bytes: Buffer, name: string): string {
  if (!isUtf8(bytes)) {
    const offset = firstInvalidUtf8(bytes);
    let line = 1;
    let lineStart = 0;
    for (let i = 0; i < offset; i++) {
      if (bytes[i] === 0x0a) {
        line++;
        lineStart = i + 1;
      }
    }
    const byte = bytes[offset]!;
    throw new CliError(`${name}: invalid UTF-8 at line ${line}, byte ${offset - lineStart + 1} of that line (byte offset ${offset} in the input): 0x${byte.toString(16).padStart(2, "0")}`, {
      hint: "save the file as UTF-8 (e.g. `iconv -f latin1 -t utf-8 in.json > out.json`); nothing was sent",
    });
  }
  const start = bytes.length >= 3 && bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  return bytes.toString("utf8", start);
}

/** A file's bytes, or stdin's for `-` (refused when stdin is a terminal: the user would wait on nothing). */
export async function readInputBytes(ctx: CommandContext, source: string, command: string): Promise<Buffer> {
  if (source === "-") {
    if (ctx.io.stdin.isTTY) throw new CliError(`${command} - reads from stdin, but stdin is a terminal`, { hint: `pipe a file: tftcache ${command} - < file.json` });
    const chunks: Buffer[] = [];
    for await (const chunk of ctx.io.stdin) chunks.push(typeof chunk === "string" ? Buffer.from(chunk) : (chunk as Buffer));
    return Buffer.concat(chunks);
  }
  try {
    return await readFile(resolve(ctx.io.cwd, source));
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new CliError(`cannot read ${source}: ${code === "ENOENT" ? "no such file" : (code ?? (err as Error).message)}`);
  }
}

/** Splits items into consecutive batches of at most `maxCount` items and `maxBytes` bytes (an item over it goes alone). */
export function packBatches(sizes: readonly number[], maxCount: number, maxBytes: number, overhead = 0): Array<{ start: number; end: number; bytes: number }> {
  const batches: Array<{ start: number; end: number; bytes: number }> = [];
  let start = 0;
  let bytes = overhead;
  for (let i = 0; i < sizes.length; i++) {
    const size = sizes[i]! + 1; // the comma between elements
    if (i > start && (i - start >= maxCount || bytes + size > maxBytes)) {
      batches.push({ start, end: i, bytes });
      start = i;
      bytes = overhead;
    }
    bytes += size;
  }
  if (start < sizes.length) batches.push({ start, end: sizes.length, bytes });
  return batches;
}
