import { Command, Option } from "commander";
import { VERSION } from "../protocol/index.js";
import type { GlobalFlags } from "./config/settings.js";
import { CommandContext, type RunOptions } from "./context.js";
import { clearCommand } from "./commands/clear.js";
import { diffCommand } from "./commands/diff.js";
import { doctorCommand } from "./commands/doctor.js";
import { flushCommand } from "./commands/flush.js";
import { getCommand } from "./commands/get.js";
import { listCommand } from "./commands/list.js";
import { seedCommand } from "./commands/seed.js";
import { statsCommand } from "./commands/stats.js";
import { verifyKvCommand } from "./commands/verify-kv.js";
import type { Io } from "./io.js";

const EXIT_CODES_HELP = `
Exit codes:
  0    success / KV in sync
  1    drift found, or key missing
  2    any error: usage, auth, network, bad input
  130  interrupted (Ctrl-C)`;

const example = (...lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`;

/**
 * The `tftcache` program. Each action stores its exit code in `result` rather than calling process.exit, so
 * the same program runs in-process under tests.
 */
export function buildProgram(io: Io, run: RunOptions, result: { exitCode: number; context?: CommandContext }): Command {
  const program = new Command("tftcache");
  const context = (cmd: Command) => {
    result.context = new CommandContext(io, cmd.optsWithGlobals() as GlobalFlags, run);
    return result.context;
  };
  const action =
    <A extends unknown[]>(fn: (ctx: CommandContext, ...args: A) => Promise<number>) =>
    async (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      const positional = args.slice(0, -1) as A;
      result.exitCode = await fn(context(cmd), ...positional);
    };

  program
    .description("Inspect, seed, diff, clear and verify the tftcache Durable Object and its KV snapshot")
    .version(VERSION, "-V, --version")
    .option("--url <url>", "Worker base URL (env TFTCACHE_URL)")
    .option("--api-key <key>", "admin API key (env TFTCACHE_API_KEY; surrounding whitespace is removed)")
    .option("--account-id <id>", "Cloudflare account id (env CLOUDFLARE_ACCOUNT_ID)")
    .option("--api-token <token>", "Cloudflare API token with KV access (env CLOUDFLARE_API_TOKEN; surrounding whitespace is removed)")
    .option("--namespace-id <id>", "KV namespace id (env TFTCACHE_KV_NAMESPACE_ID; else CACHE_DO_KV in wrangler.toml)")
    .option("--preview", "use the CACHE_DO_KV preview_id from wrangler.toml")
    .option("--env <name>", "wrangler environment to read from wrangler.toml")
    .option("--cf-api-base <url>", "Cloudflare API base (env CLOUDFLARE_API_BASE_URL)")
    .option("-c, --config <file>", "JSON config file (default ./tftcache.config.json)")
    .option("--json", "print exactly one JSON document on stdout")
    .option("--no-color", "disable colour (NO_COLOR is honoured too)")
    .option("--timeout <ms>", "per-request timeout in milliseconds, 1 to 600000 (default 15000)")
    .option("--local", "use the local stack started by `npm start` (finds .wrangler/tftcache-local.json here or in a parent folder)")
    .option("--verbose", "print retries and stack traces of unexpected errors")
    .showHelpAfterError("(run with --help for usage)")
    .addHelpText("after", `${EXIT_CODES_HELP}\n${example("tftcache --local stats", "tftcache verify-kv --flush --json", "TFTCACHE_URL=https://cache.example.workers.dev tftcache doctor")}`);

  program
    .command("stats")
    .description("live DO stats and the KV sync state")
    .addOption(new Option("-w, --watch [seconds]", "refresh every n seconds, 0.5 to 86400 (default 2), until Ctrl-C"))
    .addHelpText("after", example("tftcache stats", "tftcache stats --watch 5"))
    .action(action((ctx, opts: { watch?: string | boolean }) => statsCommand(ctx, opts)));

  program
    .command("list")
    .description("keys in the DO, sorted")
    .option("-p, --prefix <prefix>", "only keys starting with this")
    .option("-l, --limit <n>", "at most n keys, 1 to 1000000 (default: all)")
    .addHelpText("after", example("tftcache list --prefix quote: --limit 20"))
    .action(action((ctx, opts: { prefix?: string; limit?: string }) => listCommand(ctx, opts)));

  program
    .command("get")
    .description("one entry's value (from the DO, or the KV snapshot with --from kv); exit 1 if absent")
    .argument("<key>", "the cache key")
    .option("--from <tier>", "do or kv", "do")
    .addHelpText("after", example("tftcache get quote:AAPL", "tftcache get quote:AAPL --from kv --json"))
    .action(action((ctx, key: string, opts: { from?: string }) => getCommand(ctx, key, opts)));

  program
    .command("seed")
    .description("write entries from a JSON array, NDJSON, or a do_cache_entries snapshot")
    .argument("<file>", "a file, or - for stdin")
    .option("--ttl <seconds>", "TTL for entries that have none, 0.001 to 315360000 (ten years)")
    .option("--batch <n>", "entries per request, 1 to 10000", "1000")
    .option("--dry-run", "validate and count; send nothing")
    .option("--flush", "flush to KV after the last batch")
    .addHelpText("after", example("tftcache seed quotes.ndjson --ttl 300 --flush", "wrangler kv key get do_cache_entries --binding CACHE_DO_KV | tftcache seed -"))
    .action(action((ctx, file: string, opts: { ttl?: string; batch?: string; dryRun?: boolean; flush?: boolean }) => seedCommand(ctx, file, opts)));

  program
    .command("diff")
    .description("DO snapshot vs KV do_cache_entries, per key: = match, ~ differ, + only in DO, - only in KV")
    .option("--all", "also list matching keys")
    .addHelpText("after", example("tftcache diff", "tftcache diff --json | jq '.items'"))
    .action(action((ctx, opts: { all?: boolean }) => diffCommand(ctx, opts)));

  program
    .command("verify-kv")
    .description("CI gate: both KV keys present, readable, intact and equal to the DO (exit 0/1/2)")
    .option("--flush", "ask the DO to flush first")
    .option("--max-lag-seconds <n>", "tolerate KV being behind the DO for up to n seconds, 0 to 86400")
    .addHelpText("after", example("tftcache verify-kv --flush", "tftcache verify-kv --max-lag-seconds 30 --json"))
    .action(action((ctx, opts: { flush?: boolean; maxLagSeconds?: string }) => verifyKvCommand(ctx, opts)));

  program
    .command("clear")
    .description("delete the cache: DO entries, KV keys, or both")
    .option("-y, --yes", "do not ask (required when stdin is not a terminal)")
    .option("--dry-run", "say what would be deleted")
    .option("--scope <scope>", "do, kv or all", "all")
    .addHelpText("after", example("tftcache clear --dry-run", "tftcache clear --scope kv --yes"))
    .action(action((ctx, opts: { yes?: boolean; dryRun?: boolean; scope?: string }) => clearCommand(ctx, opts)));

  program
    .command("flush")
    .description("write both KV keys now")
    .addHelpText("after", example("tftcache flush"))
    .action(action((ctx) => flushCommand(ctx)));

  program
    .command("doctor")
    .description("check config, reachability, auth, the KV namespace and clock skew; say what to fix")
    .addHelpText("after", example("tftcache --local doctor"))
    .action(action((ctx) => doctorCommand(ctx)));

  return program;
}
