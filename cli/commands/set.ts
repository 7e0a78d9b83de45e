import { JsonValueError, canonicalJson, keyProblem, valueProblem } from "../../protocol/index.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { FLAG_BOUNDS, parseNumberFlag } from "../flags.js";
import { formatRelative } from "../output.js";
import { quoted } from "../terminal-safe.js";

function checkKey(key: string): void {
  const problem = keyProblem(key);
  if (problem) throw new CliError(`${problem} (got ${quoted(key)})`);
}

/** `set KEY JSON [--ttl s]`: PUT /entries/:key. The value is checked with the Worker's own rules first. */
export async function setCommand(ctx: CommandContext, key: string, raw: string, opts: { ttl?: string }): Promise<number> {
  checkKey(key);
  const ttl = opts.ttl === undefined ? undefined : parseNumberFlag("--ttl", opts.ttl, FLAG_BOUNDS.ttlSeconds);
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch (err) {
    throw new CliError(`the value is not valid JSON: ${(err as Error).message}`, { hint: `quote it for the shell: tftcache set ${key} '{"bid":1}' (a string needs JSON quotes too: '"text"')` });
  }
  try {
    const problem = valueProblem(canonicalJson(value));
    if (problem) throw new CliError(problem);
  } catch (err) {
    if (err instanceof JsonValueError || err instanceof RangeError) throw new CliError(err instanceof RangeError ? "value is nested too deeply to process" : err.message);
    throw err;
  }
  const result = await ctx.admin().put(key, value, ttl);
  if (ctx.out.json) ctx.out.document(result);
  else {
    ctx.out.print(`${ctx.out.chalk.green("set")} ${quoted(key)}, expires ${formatRelative(result.expiresAt)} (generation ${result.generation})`);
    if (result.evicted > 0) ctx.out.warn(`the cache's bounds evicted ${result.evicted} least recently used entr${result.evicted === 1 ? "y" : "ies"} to make room`);
  }
  return EXIT.OK;
}

/** `del KEY`: DELETE /entries/:key; exit 1 when there was nothing to delete (like `get` for an absent key). */
export async function delCommand(ctx: CommandContext, key: string): Promise<number> {
  checkKey(key);
  const result = await ctx.admin().del(key);
  if (!result) {
    if (ctx.out.json) ctx.out.document({ key, deleted: false });
    ctx.out.note(`${quoted(key)} not found in the DO (absent or expired); nothing deleted`);
    return EXIT.DRIFT;
  }
  if (ctx.out.json) ctx.out.document({ ...result, deleted: true });
  else ctx.out.print(`${ctx.out.chalk.green("deleted")} ${quoted(key)} (generation ${result.generation}; KV follows with the next flush)`);
  return EXIT.OK;
}
