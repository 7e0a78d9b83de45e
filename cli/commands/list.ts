import { MAX_LIST_LIMIT } from "../../protocol/index.js";
import type { CommandContext } from "../context.js";
import { EXIT } from "../errors.js";
import { FLAG_BOUNDS, parseNumberFlag } from "../flags.js";
import { formatBytes, formatRelative } from "../output.js";
import { displayKey, quoted } from "../terminal-safe.js";

/** `list`: keys in the DO, sorted, following the cursor until `--limit` keys or the last page. */
export async function listCommand(ctx: CommandContext, opts: { prefix?: string; limit?: string }): Promise<number> {
  const max = opts.limit === undefined ? Number.POSITIVE_INFINITY : parseNumberFlag("--limit", opts.limit, FLAG_BOUNDS.limit);
  const admin = ctx.admin();
  const keys: Array<{ key: string; expiresAt: number; size: number }> = [];
  let cursor: string | null = null;
  do {
    const page = await admin.list({ ...(opts.prefix ? { prefix: opts.prefix } : {}), cursor, limit: Math.min(MAX_LIST_LIMIT, max - keys.length) });
    keys.push(...page.keys);
    cursor = page.cursor;
  } while (cursor !== null && keys.length < max);
  if (ctx.out.json) {
    ctx.out.document({ keys, cursor });
    return EXIT.OK;
  }
  if (keys.length === 0) {
    ctx.out.note(opts.prefix ? `no keys with prefix ${quoted(opts.prefix)}` : "the cache is empty");
    return EXIT.OK;
  }
  const now = Date.now();
  ctx.out.print(ctx.out.table(["key", "expires", "size"], keys.map((k) => [displayKey(k.key), formatRelative(k.expiresAt, now), formatBytes(k.size)])));
  ctx.out.note(`${keys.length} key${keys.length === 1 ? "" : "s"}${cursor ? " (more: raise --limit)" : ""}`);
  return EXIT.OK;
}
