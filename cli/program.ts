import { Command, Option } from "commander";
import { VERSION } from "../protocol/version.js";
import type { GlobalFlags } from "./config/settings.js";
import type { CommandContext, RunOptions } from "./context.js";
import type { Io } from "./io.js";

const EXIT_CODES_HELP = `
Exit codes:
  0    success / KV in sync
  1    drift found, or key missing
  2    any error: usage, auth, network, bad input
  130  interrupted (Ctrl-C)`;

const example = (...lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join("\n")}\n`;

type CommandFn<A extends unknown[]> = (ctx: CommandContext, ...args: A) => Promise<number>;

/**
 * The `tftcache` program. Each action stores its exit code in `result` rather than calling process.exit, so
 * the same program runs in-process under tests.
 *
 * Start-up cost matters (`tftcache --version` should cost about what `node -e 0` does): this module loads only
 * commander. Every command module, the settings resolver, the HTTP clients (undici) and the output helpers
 * (chalk, cli-table3) are imported when an action runs, never for `--help` or `--version`.
 */
export function buildProgram(io: Io, run: RunOptions, result: { exitCode: number; context?: CommandContext }): Command {
  const program = new Command("tftcache");
  const action =
    <A extends unknown[]>(load: () => Promise<CommandFn<A>>) =>
    async (...args: unknown[]) => {
      const cmd = args[args.length - 1] as Command;
      // Commander passes the positional arguments, then the options object, then the command.
      const positional = args.slice(0, -1) as A;
      await run.beforeCommand?.();
      const [{ CommandContext }, fn] = await Promise.all([import("./context.js"), load()]);
      result.context = new CommandContext(io, cmd.optsWithGlobals() as GlobalFlags, run);
      result.exitCode = await fn(result.context, ...positional);
    };

  program
    .description("Inspect, seed, diff, clear, back up and verify the tftcache Durable Object and its KV snapshot")
    .version(VERSION, "-V, --version")
    .option("--url <url>", "Worker base URL (env TFTCACHE_URL)")
    .option("--api-key <key>", "admin API key (env TFTCACHE_API_KEY; surrounding whitespace is removed)")
    .option("--account-id <id>", "Cloudflare account id (env CLOUDFLARE_ACCOUNT_ID; else account_id in the wrangler config)")
    .option("--api-token <token>", "Cloudflare API token with KV access (env CLOUDFLARE_API_TOKEN; surrounding whitespace is removed)")
    .option("--namespace-id <id>", "KV namespace id (env TFTCACHE_KV_NAMESPACE_ID; else CACHE_DO_KV in wrangler.json, wrangler.jsonc or wrangler.toml)")
    .option("--preview", "use the CACHE_DO_KV preview_id from the wrangler config")
    .option("--env <name>", "wrangler environment to read from the wrangler config")
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
    .action(action(async () => (await import("./commands/stats.js")).statsCommand));

  program
    .command("list")
    .description("keys in the DO, sorted")
    .option("-p, --prefix <prefix>", "only keys starting with this")
    .option("-l, --limit <n>", "at most n keys, 1 to 1000000 (default: all)")
    .addHelpText("after", example("tftcache list --prefix quote: --limit 20"))
    .action(action(async () => (await import("./commands/list.js")).listCommand));

  program
    .command("get")
    .description("one entry's value (from the DO, or the KV snapshot with --from kv); exit 1 if absent")
    .argument("<key>", "the cache key")
    .addOption(new Option("--from <tier>", "do or kv").choices(["do", "kv"]).default("do"))
    .addHelpText("after", example("tftcache get quote:AAPL", "tftcache get quote:AAPL --from kv --json"))
    .action(action(async () => (await import("./commands/get.js")).getCommand));

  program
    .command("set")
    .description("write one entry: KEY and its value as JSON")
    .argument("<key>", "the cache key")
    .argument("<json>", "the value, as JSON (quote it for the shell: '{\"bid\":1}', '\"text\"', 42)")
    .option("--ttl <seconds>", "time to live, 0.001 to 315360000 (default: the Worker's CACHE_DEFAULT_TTL_SECONDS)")
    .addHelpText("after", example(`tftcache set quote:AAPL '{"bid":189.5}' --ttl 300`, "tftcache set flag:maintenance true"))
    .action(action(async () => (await import("./commands/set.js")).setCommand));

  program
    .command("del")
    .description("delete one entry; exit 1 if it was absent")
    .argument("<key>", "the cache key")
    .addHelpText("after", example("tftcache del quote:AAPL"))
    .action(action(async () => (await import("./commands/set.js")).delCommand));

  program
    .command("purge")
    .description("delete every entry whose key starts with a prefix (DO now, KV with the next flush)")
    .requiredOption("-p, --prefix <prefix>", "the key prefix (not empty: to delete everything, use clear)")
    .option("-y, --yes", "do not ask (required when stdin is not a terminal)")
    .option("--soft", "mark the entries stale instead of deleting them: getOrSet serves each once more while it refreshes it")
    .option("--dry-run", "list and count the matching keys; delete nothing")
    .addHelpText("after", example("tftcache purge --prefix quote: --dry-run", "tftcache purge --prefix session: --yes", "tftcache purge --prefix quote:AAPL --soft --yes"))
    .action(action(async () => (await import("./commands/purge.js")).purgeCommand));

  program
    .command("seed")
    .description("write entries from a JSON array, NDJSON, or a do_cache_entries snapshot")
    .argument("<file>", "a file, or - for stdin")
    .option("--ttl <seconds>", "TTL for entries that have none, 0.001 to 315360000 (ten years)")
    .option("--batch <n>", "at most n entries per request, 1 to 10000 (requests also stay under 4 MiB)", "1000")
    .option("--allow-eviction", "send a seed even if the cache's bounds would evict entries at once")
    .option("--dry-run", "validate and count; send nothing")
    .option("--flush", "flush to KV after the last batch")
    .addHelpText("after", example("tftcache seed quotes.ndjson --ttl 300 --flush", "wrangler kv key get do_cache_entries --binding CACHE_DO_KV | tftcache seed -"))
    .action(action(async () => (await import("./commands/seed.js")).seedCommand));

  program
    .command("diff")
    .description("DO snapshot vs KV do_cache_entries, per key: = match, ~ differ, + only in DO, - only in KV")
    .option("--all", "list every key (matching ones too); without it, the first 20 differences")
    .addHelpText("after", example("tftcache diff", "tftcache diff --json | jq '.items'"))
    .action(action(async () => (await import("./commands/diff.js")).diffCommand));

  program
    .command("verify-kv")
    .description("CI gate: both KV keys present, readable, intact and equal to the DO (exit 0/1/2)")
    .option("--flush", "ask the DO to flush first")
    .option("--max-lag-seconds <n>", "tolerate KV being behind the DO for up to n seconds, 0 to 86400")
    .option("--all", "list every differing key (default: the first 20)")
    .option("--full", "download the DO's snapshot and compare every key even when the digests already agree")
    .addHelpText("after", example("tftcache verify-kv --flush", "tftcache verify-kv --max-lag-seconds 30 --json"))
    .action(action(async () => (await import("./commands/verify-kv.js")).verifyKvCommand));

  program
    .command("export")
    .description("write the cache to a file: a do_cache_entries snapshot with its digest (restorable), or NDJSON")
    .argument("[file]", "where to write; - or nothing for stdout")
    .addOption(new Option("--from <tier>", "do (the DO, default) or kv (the KV snapshot)").choices(["do", "kv"]).default("do"))
    .option("--ndjson", "one entry per line ({key, value, expiresAt, …}): for jq and `tftcache seed`, not for restore")
    .addHelpText("after", example("tftcache export backup.json", "tftcache export --from kv - | gzip > kv-backup.json.gz", "tftcache export --ndjson - | jq -r .key"))
    .action(action(async () => (await import("./commands/export.js")).exportCommand));

  program
    .command("restore")
    .description("replace the cache's whole contents with an export, atomically; then flush and verify KV")
    .argument("<file>", "a file written by `tftcache export` (a do_cache_entries snapshot), or - for stdin")
    .option("-y, --yes", "do not ask (required when stdin is not a terminal)")
    .option("--allow-eviction", "restore even if the file holds more than the cache's bounds keep")
    .addHelpText("after", example("tftcache restore backup.json", "tftcache restore backup.json --yes --json"))
    .action(action(async () => (await import("./commands/restore.js")).restoreCommand));

  program
    .command("clear")
    .description("delete the cache: DO entries, KV keys, or both")
    .option("-y, --yes", "do not ask (required when stdin is not a terminal)")
    .option("--dry-run", "say what would be deleted")
    .addOption(new Option("--scope <scope>", "do, kv or all").choices(["do", "kv", "all"]).default("all"))
    .addHelpText("after", example("tftcache clear --dry-run", "tftcache clear --scope kv --yes"))
    .action(action(async () => (await import("./commands/clear.js")).clearCommand));

  program
    .command("flush")
    .description("write both KV keys now")
    .addHelpText("after", example("tftcache flush"))
    .action(action(async () => (await import("./commands/flush.js")).flushCommand));

  program
    .command("doctor")
    .description("check config, reachability, auth, the KV namespace and clock skew; say what to fix")
    .addHelpText("after", example("tftcache --local doctor"))
    .action(action(async () => (await import("./commands/doctor.js")).doctorCommand));

  program
    .command("completion")
    .description("print a shell completion script")
    .addArgument(program.createArgument("<shell>", "bash, zsh or fish").choices(["bash", "zsh", "fish"]))
    .addHelpText(
      "after",
      example("source <(tftcache completion bash)            # in ~/.bashrc", "tftcache completion zsh > \"${fpath[1]}/_tftcache\"", "tftcache completion fish > ~/.config/fish/completions/tftcache.fish"),
    )
    // Needs no settings, network or config file: it only reads this program's own tree.
    .action(async (shell: string) => {
      const { completionScript } = await import("./commands/completion.js");
      io.stdout.write(completionScript(program, shell as "bash" | "zsh" | "fish"));
      result.exitCode = 0;
    });

  return program;
}
