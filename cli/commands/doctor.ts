import { pacingAdvice } from "../pacing-advice.js";
import { ENTRIES_KEY, VERSION } from "../../protocol/index.js";
import type { CommandContext } from "../context.js";
import { CliError, EXIT } from "../errors.js";
import { endpoint, send } from "../http/send.js";
import { safeText } from "../terminal-safe.js";

/**
 * Shorter admin keys can be guessed: the Worker slows failed attempts down, but a 6-character key falls to a
 * patient attacker anyway. 16 characters is the floor; `openssl rand -hex 32` gives 64.
 */
export const MIN_STRONG_KEY_LENGTH = 16;
const STRONG_KEY_FIX = "generate a strong key (`openssl rand -hex 32`), set it on the Worker with `wrangler secret put ADMIN_API_KEY` (locally: ADMIN_API_KEY in .dev.vars) and here (TFTCACHE_API_KEY)";

type Verdict = "ok" | "warn" | "fail";
interface Check {
  name: string;
  verdict: Verdict;
  detail: string;
  fix?: string;
}

/**
 * `doctor`: each check says what it found and, when something is wrong, what to change. Exit 2 if any check
 * fails; warnings alone exit 0.
 */
export async function doctorCommand(ctx: CommandContext): Promise<number> {
  const checks: Check[] = [];
  const s = ctx.settings;
  const src = (name: keyof typeof s.sources) => (s.sources[name] ? ` (from ${s.sources[name]})` : "");

  checks.push(s.url ? { name: "worker url", verdict: "ok", detail: `${s.url}${src("url")}` } : { name: "worker url", verdict: "fail", detail: "not set", fix: "set --url or TFTCACHE_URL (or use --local)" });
  if (!s.apiKey) {
    checks.push(
      s.localAdminDisabled
        ? { name: "admin key", verdict: "fail", detail: "the local stack runs with the admin API disabled (ADMIN_API_KEY=\"\" in its .dev.vars)", fix: "set ADMIN_API_KEY in .dev.vars (or delete the line for the built-in dev key) and restart `npm start`" }
        : { name: "admin key", verdict: "fail", detail: "not set", fix: "set --api-key or TFTCACHE_API_KEY" },
    );
  } else if (s.secretProblems.apiKey) checks.push({ name: "admin key", verdict: "fail", detail: s.secretProblems.apiKey, fix: "a key is one line of printable characters: check how it was set" });
  else if (s.apiKey.length < MIN_STRONG_KEY_LENGTH) {
    checks.push({ name: "admin key", verdict: "warn", detail: `set${src("apiKey")}, but only ${s.apiKey.length} characters: weak, it can be brute-forced`, fix: STRONG_KEY_FIX });
  } else checks.push({ name: "admin key", verdict: "ok", detail: `set${src("apiKey")}` });
  const wc = s.wranglerConfig;
  checks.push(
    wc
      ? {
          name: "wrangler config",
          verdict: wc.shadowed ? "warn" : "ok",
          detail: wc.shadowed ? `${wc.path} (wrangler's order: wrangler.json in any parent folder before wrangler.jsonc, then wrangler.toml; the nearer ${wc.shadowed} is not read)` : wc.path,
          ...(wc.shadowed ? { fix: `wrangler deploy reads ${wc.path} from here too: rename one of them, or pass --namespace-id and --account-id` } : {}),
        }
      : { name: "wrangler config", verdict: "ok", detail: `none (no wrangler.json, wrangler.jsonc or wrangler.toml from ${ctx.io.cwd} upward)` },
  );
  const kvMissing = (["accountId", "apiToken", "namespaceId"] as const).filter((n) => !s[n]);
  checks.push(
    s.secretProblems.apiToken
      ? { name: "cloudflare api", verdict: "fail", detail: s.secretProblems.apiToken, fix: "a token is one line of printable characters: check how it was set" }
      : kvMissing.length === 0
      ? { name: "cloudflare api", verdict: "ok", detail: `account ${s.accountId}${src("accountId")}, namespace ${s.namespaceId}${src("namespaceId")}, ${s.cfApiBase}` }
      : { name: "cloudflare api", verdict: "warn", detail: `missing ${kvMissing.join(", ")}: diff, verify-kv and get --from kv will not work`, fix: "set CLOUDFLARE_ACCOUNT_ID, CLOUDFLARE_API_TOKEN and TFTCACHE_KV_NAMESPACE_ID (or account_id and the CACHE_DO_KV binding in wrangler.json, wrangler.jsonc or wrangler.toml)" },
  );

  let doGeneration: number | undefined;
  if (s.url) {
    const started = Date.now();
    try {
      const res = await send(endpoint(s.url, "/health"), { method: "GET" }, { ...ctx.http, retries: 0 });
      const elapsed = Date.now() - started;
      let version: string | undefined;
      try {
        version = (JSON.parse(res.text) as { data?: { version?: string } }).data?.version;
      } catch {
        version = undefined;
      }
      if (res.status !== 200 || !version) checks.push({ name: "reachability", verdict: "fail", detail: `GET /health answered HTTP ${res.status} without a tftcache version`, fix: "is --url the tftcache Worker?" });
      else {
        checks.push({ name: "reachability", verdict: version === VERSION ? "ok" : "warn", detail: `tftcache ${version} in ${elapsed} ms${version === VERSION ? "" : ` (CLI is ${VERSION})`}`, ...(version === VERSION ? {} : { fix: "deploy the Worker and the CLI from the same release" }) });
        const date = res.headers.date;
        const serverMs = typeof date === "string" ? Date.parse(date) : NaN;
        if (!Number.isNaN(serverMs)) {
          const skew = Math.round((serverMs - (started + elapsed / 2)) / 1000);
          checks.push(Math.abs(skew) <= 30 ? { name: "clock skew", verdict: "ok", detail: `${skew}s` } : { name: "clock skew", verdict: "warn", detail: `${skew}s between this machine and the Worker`, fix: "sync this machine's clock (TTLs and --max-lag-seconds read it)" });
        }
      }
    } catch (err) {
      checks.push({ name: "reachability", verdict: "fail", detail: (err as Error).message, ...(err instanceof CliError && err.hint ? { fix: err.hint } : {}) });
    }
  }
  if (s.url && s.apiKey && !s.secretProblems.apiKey && checks.find((c) => c.name === "reachability")?.verdict !== "fail") {
    try {
      const stats = await ctx.admin().stats();
      doGeneration = stats.generation;
      checks.push({ name: "auth", verdict: "ok", detail: `admin API answered: ${stats.size} entries, generation ${stats.generation}` });
      if (stats.kv.writable === false) checks.push({ name: "kv writes", verdict: "warn", detail: `KV cannot be written now: ${stats.kv.lastError ?? "see tftcache stats"}`, fix: "`tftcache verify-kv` fails until this clears; see `tftcache stats` for the budget and the last error" });
      else if (stats.kv.lastError) checks.push({ name: "kv writes", verdict: "warn", detail: stats.kv.lastError, fix: "see `tftcache stats`; the DO retries from its alarm" });
      const pacing = pacingAdvice(stats.kv);
      if (pacing) checks.push({ name: "kv pacing", verdict: "warn", ...pacing });
    } catch (err) {
      checks.push({ name: "auth", verdict: "fail", detail: (err as Error).message, ...(err instanceof CliError && err.hint ? { fix: err.hint } : {}) });
    }
  }
  if (kvMissing.length === 0 && !s.secretProblems.apiToken) {
    try {
      const read = await ctx.kv().getMetadata(ENTRIES_KEY);
      if (!read.found) checks.push({ name: "namespace", verdict: "warn", detail: `${ENTRIES_KEY} not present in namespace ${s.namespaceId}`, fix: "the DO has not flushed yet (`tftcache flush`), or this is not the namespace bound as CACHE_DO_KV (check --preview / --env)" });
      else if (read.metadata === null || typeof read.metadata !== "object") {
        // Present, but written by something other than the DO's flush (which always sets metadata).
        checks.push({ name: "namespace", verdict: "warn", detail: `${ENTRIES_KEY} present but has no metadata: it was not written by the tftcache DO (a manual \`wrangler kv key put\`, another tool, or a very old version)`, fix: "`tftcache flush` rewrites it with metadata; `tftcache verify-kv` checks its contents" });
      } else {
        const meta = read.metadata as { generation?: number };
        const behind = doGeneration !== undefined && typeof meta.generation === "number" && meta.generation < doGeneration;
        checks.push({ name: "namespace", verdict: "ok", detail: `${ENTRIES_KEY} present, generation ${meta.generation ?? "?"}${behind ? " (behind the DO; `tftcache verify-kv` for details)" : ""}` });
      }
    } catch (err) {
      checks.push({ name: "namespace", verdict: "fail", detail: (err as Error).message, ...(err instanceof CliError && err.hint ? { fix: err.hint } : {}) });
    }
  }

  const failed = checks.some((c) => c.verdict === "fail");
  if (ctx.out.json) ctx.out.document({ ok: !failed, checks });
  else {
    const c = ctx.out.chalk;
    const mark: Record<Verdict, string> = { ok: c.green("ok"), warn: c.yellow("warn"), fail: c.red("FAIL") };
    // Details quote servers (a version string, an error message): escaped before the table measures them.
    ctx.out.print(ctx.out.table(["check", "", "found", "fix"], checks.map((ch) => [ch.name, mark[ch.verdict], safeText(ch.detail), safeText(ch.fix ?? "")])));
  }
  return failed ? EXIT.ERROR : EXIT.OK;
}
