import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { LOCAL_DEFAULTS, type AdminKeySource } from "../cli/config/local-stack.js";

/**
 * `.dev.vars` parsed exactly as `wrangler dev` parses it: wrangler calls `dotenv.parse` (dotenv 16.3.1, bundled
 * in wrangler-dist/cli.js; no variable expansion for .dev.vars). This is that function, so `npm start` and
 * `wrangler dev` read the same file the same way:
 * - `KEY=value`, `KEY: value`, an optional `export ` prefix, spaces around `=`;
 * - values in '…', "…" or `…` quotes may span lines; inside "…", `\n` and `\r` become line breaks;
 * - an unquoted value ends at `#` (a comment) and is trimmed; `KEY=` and `KEY=""` are empty strings;
 * - a later line for the same key wins; lines that match nothing are ignored.
 */
const LINE = /(?:^|^)\s*(?:export\s+)?([\w.-]+)(?:\s*=\s*?|:\s+?)(\s*'(?:\\'|[^'])*'|\s*"(?:\\"|[^"])*"|\s*`(?:\\`|[^`])*`|[^#\r\n]+)?\s*(?:#.*)?(?:$|$)/gm;

export function parseDevVars(src: string): Record<string, string> {
  const obj: Record<string, string> = {};
  const lines = src.replace(/\r\n?/gm, "\n");
  LINE.lastIndex = 0;
  let match: RegExpExecArray | null;
  while ((match = LINE.exec(lines)) != null) {
    const key = match[1]!;
    let value = (match[2] ?? "").trim();
    const maybeQuote = value[0];
    value = value.replace(/^(['"`])([\s\S]*)\1$/gm, "$2");
    if (maybeQuote === '"') value = value.replace(/\\n/g, "\n").replace(/\\r/g, "\r");
    obj[key] = value;
  }
  return obj;
}

/** The admin key `npm start` gives the Worker, and why: the banner says both. */
export interface AdminKeyChoice {
  /** Empty when the admin API is disabled. */
  key: string;
  source: AdminKeySource;
  /** Where the key came from, for the banner ("from .dev.vars"); for a disabled API, the whole sentence. */
  describe: string;
}

/**
 * The key is never overridden behind the developer's back: ADMIN_API_KEY in .dev.vars is used as it is, and an
 * explicit empty value disables the admin API (503 admin_disabled), as under `wrangler dev`. Only when
 * .dev.vars is absent or has no ADMIN_API_KEY line does the stack use the built-in development key.
 */
export function chooseAdminKey(root: string, opts: { override?: string; devVarsFile?: string } = {}): AdminKeyChoice {
  if (opts.override !== undefined) return { key: opts.override, source: "option", describe: "set by the caller" };
  const file = opts.devVarsFile ?? join(root, ".dev.vars");
  // Like wrangler dev (getVarsForDev): .dev.vars if it exists; otherwise .env then .env.local (the later wins),
  // unless CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV=false.
  let vars: Record<string, string> | undefined;
  let from = ".dev.vars";
  if (existsSync(file)) vars = parseDevVars(readFileSync(file, "utf8"));
  else if (opts.devVarsFile === undefined && process.env.CLOUDFLARE_LOAD_DEV_VARS_FROM_DOT_ENV !== "false") {
    const found = [".env", ".env.local"].filter((name) => existsSync(join(root, name)));
    if (found.length > 0) {
      vars = Object.assign({}, ...found.map((name) => parseDevVars(readFileSync(join(root, name), "utf8"))));
      from = found.join(" + ");
    }
  }
  if (vars === undefined) {
    return { key: LOCAL_DEFAULTS.apiKey, source: "default", describe: "the built-in dev key, because there is no .dev.vars (nor .env)" };
  }
  if (!Object.hasOwn(vars, "ADMIN_API_KEY")) {
    return { key: LOCAL_DEFAULTS.apiKey, source: "default", describe: `the built-in dev key, because ${from} has no ADMIN_API_KEY line` };
  }
  const key = vars.ADMIN_API_KEY!;
  if (key === "") {
    return { key: "", source: "disabled", describe: `DISABLED: ${from} sets ADMIN_API_KEY to an empty value, so every admin route answers 503 admin_disabled (as under wrangler dev)` };
  }
  return { key, source: "dev-vars", describe: `from ${from}` };
}
