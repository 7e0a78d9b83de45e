import { existsSync, readFileSync } from "node:fs";
import { isAbsolute, join } from "node:path";
import { CliError } from "../errors.js";
import { FLAG_BOUNDS, parseNumberFlag } from "../flags.js";
import { readLocalStackInfo } from "./local-stack.js";
import { KV_BINDING, findWranglerConfig, readWranglerConfig, wranglerSettings, type FoundWranglerConfig } from "./wrangler-config.js";

/** Global options as commander hands them over (flags only; env and files are merged here). */
export interface GlobalFlags {
  url?: string;
  apiKey?: string;
  accountId?: string;
  apiToken?: string;
  namespaceId?: string;
  cfApiBase?: string;
  config?: string;
  env?: string;
  preview?: boolean;
  json?: boolean;
  color?: boolean;
  timeout?: string;
  local?: boolean;
  verbose?: boolean;
}

export type Source = "flag" | "local" | "env" | "config" | "wrangler config" | "default";

export interface Settings {
  url?: string;
  apiKey?: string;
  accountId?: string;
  apiToken?: string;
  namespaceId?: string;
  cfApiBase: string;
  timeoutMs: number;
  json: boolean;
  color: boolean;
  verbose: boolean;
  /** Where each setting came from: `doctor` prints it so a wrong value can be traced. */
  sources: Partial<Record<SettingName, Source | string>>;
  configFile?: string;
  /** The `npm start` state file `--local` read. */
  localFile?: string;
  /** The wrangler config found from the working folder as wrangler finds it (read only when a value is missing). */
  wranglerConfig?: FoundWranglerConfig;
  /** `--local` found a stack that runs with the admin API disabled (ADMIN_API_KEY="" in .dev.vars). */
  localAdminDisabled?: boolean;
  /** Why a secret cannot be sent (characters an HTTP header cannot carry); the command that needs it fails. */
  secretProblems: Partial<Record<SecretName, string>>;
  /** One-line notes for stderr (for example, whitespace trimmed from a secret). Never contain a secret. */
  notes: string[];
}

export type SecretName = "apiKey" | "apiToken";

/** How a secret is named in messages: what it is, never its value. */
export const SECRET_LABEL: Record<SecretName, string> = { apiKey: "the API key", apiToken: "the Cloudflare API token" };

/** undici's rule for a header value (RFC 9110 field-value octets): tab, printable ASCII and Latin-1 only. */
const HEADER_INVALID = /[^\t\x20-\x7e\x80-\xff]/;

/** Why `value` cannot travel in an HTTP header, in words that do not reveal it; null if it can. */
export function headerValueProblem(value: string): string | null {
  const bad = value.match(HEADER_INVALID);
  if (!bad) return null;
  const ch = bad[0];
  const what = ch === "\n" || ch === "\r" ? "a line break" : ch.charCodeAt(0) > 0xff ? "a character outside Latin-1" : "a control character";
  return `contains characters not allowed in an HTTP header (${what} at position ${bad.index! + 1} of ${value.length})`;
}

type SettingName = "url" | "apiKey" | "accountId" | "apiToken" | "namespaceId" | "cfApiBase" | "timeoutMs";

export const DEFAULT_CF_API_BASE = "https://api.cloudflare.com/client/v4";
export const DEFAULT_TIMEOUT_MS = 15_000;

/** The flag and env var for each setting: error messages name both. */
export const SETTING_SOURCES: Record<SettingName, { flag: string; env?: string }> = {
  url: { flag: "--url", env: "TFTCACHE_URL" },
  apiKey: { flag: "--api-key", env: "TFTCACHE_API_KEY" },
  accountId: { flag: "--account-id", env: "CLOUDFLARE_ACCOUNT_ID" },
  apiToken: { flag: "--api-token", env: "CLOUDFLARE_API_TOKEN" },
  namespaceId: { flag: "--namespace-id", env: "TFTCACHE_KV_NAMESPACE_ID" },
  cfApiBase: { flag: "--cf-api-base", env: "CLOUDFLARE_API_BASE_URL" },
  timeoutMs: { flag: "--timeout" },
};

export const CONFIG_FILE_NAME = "tftcache.config.json";

function readConfigFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new CliError(`cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text) as unknown;
    if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new Error("not a JSON object");
  } catch (err) {
    throw new CliError(`config file ${path} is not valid JSON: ${(err as Error).message}`);
  }
  // As strict as the flags: a value of the wrong type is an error that names it, never silently ignored.
  const record = doc as Record<string, unknown>;
  const expected: Record<string, "string" | "number" | "boolean"> = { url: "string", apiKey: "string", accountId: "string", apiToken: "string", namespaceId: "string", cfApiBase: "string", env: "string", timeout: "number", preview: "boolean" };
  for (const [name, type] of Object.entries(expected)) {
    if (Object.hasOwn(record, name) && typeof record[name] !== type) {
      throw new CliError(`"${name}" in config file ${path} must be a ${type} (got ${JSON.stringify(record[name])?.slice(0, 40) ?? typeof record[name]})`);
    }
  }
  return record;
}

/** The Worker's URL and Cloudflare's API base must be http(s) URLs: say so, naming where the value came from. */
function urlProblem(value: string): string | null {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return "is not a URL";
  }
  return url.protocol === "http:" || url.protocol === "https:" ? null : `is not an http(s) URL (${url.protocol} given)`;
}

/**
 * Resolves every setting: flag > `--local` > env var > config file (`-c`, else ./tftcache.config.json) >
 * the wrangler config (wrangler.json, wrangler.jsonc or wrangler.toml, found as wrangler finds it: the namespace
 * id and account_id) > default. `--local` sits just under explicit flags so that a shell with
 * production variables exported still talks to the laptop when asked to.
 */
export function resolveSettings(flags: GlobalFlags, env: NodeJS.ProcessEnv, cwd: string): Settings {
  const configPath = flags.config ? (isAbsolute(flags.config) ? flags.config : join(cwd, flags.config)) : existsSync(join(cwd, CONFIG_FILE_NAME)) ? join(cwd, CONFIG_FILE_NAME) : undefined;
  const file = configPath ? readConfigFile(configPath) : {};
  const local = flags.local ? readLocalStackInfo(cwd) : undefined;
  const sources: Settings["sources"] = {};
  const notes: string[] = [];
  const secretProblems: Settings["secretProblems"] = {};
  /** Where a value came from, as a person would name it in a note. */
  const origin = (name: SettingName, source: Source | string): string => {
    const { flag, env: envName } = SETTING_SOURCES[name];
    if (source === "flag") return flag;
    if (source.startsWith("local")) return local ? local.file : "the local stack file";
    if (source.startsWith("env ")) return envName ?? source;
    return `"${name}" in ${configPath ?? CONFIG_FILE_NAME}`;
  };

  const pick = (name: SettingName, flag: string | undefined, fileKey: string, localValue?: string): string | undefined => {
    const envName = SETTING_SOURCES[name].env;
    const candidates: Array<[Source | string, unknown]> = [
      ["flag", flag],
      [local ? `local ${local.file}` : "local", localValue],
      [envName ? `env ${envName}` : "env", envName ? env[envName] : undefined],
      [configPath ? `config ${configPath}` : "config", file[fileKey]],
    ];
    for (const [source, raw] of candidates) {
      // A local stack that runs with the admin API disabled has no key to offer, and a production key exported
      // in this shell must not be sent to it instead.
      if (source.startsWith("local") && name === "apiKey" && local?.adminKeySource === "disabled") return undefined;
      if (typeof raw !== "string" || raw === "") continue;
      let value = raw;
      if (name === "apiKey" || name === "apiToken") {
        // `$(cat key.txt)` keeps a trailing newline, and undici refuses such a header; no secret has
        // meaningful surrounding whitespace, so trim it, and say so (the note never shows the value).
        value = raw.trim();
        if (value === "") {
          notes.push(`ignored ${SECRET_LABEL[name]} from ${origin(name, source)}: it is only whitespace`);
          continue;
        }
        if (value !== raw) notes.push(`removed surrounding whitespace from ${SECRET_LABEL[name]} (${origin(name, source)})`);
        const problem = headerValueProblem(value);
        if (problem) secretProblems[name] = `${SECRET_LABEL[name]} (${origin(name, source)}) ${problem}`;
      }
      sources[name] = source;
      return value;
    }
    return undefined;
  };

  const settings: Settings = {
    cfApiBase: DEFAULT_CF_API_BASE,
    timeoutMs: DEFAULT_TIMEOUT_MS,
    json: flags.json === true,
    color: flags.color !== false && !("NO_COLOR" in env && env.NO_COLOR !== ""),
    verbose: flags.verbose === true,
    sources,
    secretProblems,
    notes,
  };
  if (configPath) settings.configFile = configPath;
  if (local) settings.localFile = local.file;
  if (local?.adminKeySource === "disabled" && !flags.apiKey) settings.localAdminDisabled = true;
  const assign = (name: Exclude<SettingName, "timeoutMs" | "cfApiBase">, value: string | undefined) => {
    if (value !== undefined) settings[name] = value;
  };
  assign("url", pick("url", flags.url, "url", local?.url));
  assign("apiKey", pick("apiKey", flags.apiKey, "apiKey", local?.apiKey));
  assign("accountId", pick("accountId", flags.accountId, "accountId", local?.accountId));
  assign("apiToken", pick("apiToken", flags.apiToken, "apiToken", local?.apiToken));
  assign("namespaceId", pick("namespaceId", flags.namespaceId, "namespaceId", local?.namespaceId));
  const base = pick("cfApiBase", flags.cfApiBase, "cfApiBase", local?.cfApiBase);
  if (base) settings.cfApiBase = base;
  else sources.cfApiBase = "default";
  for (const name of ["url", "cfApiBase"] as const) {
    const value = settings[name];
    const problem = value === undefined ? null : urlProblem(value);
    if (problem) throw new CliError(`${origin(name, sources[name] ?? "flag")} ${problem}: ${JSON.stringify(value)}`, { hint: "for example --url https://tftcache.example.workers.dev" });
  }

  const wranglerEnv = flags.env ?? (typeof file.env === "string" ? file.env : undefined);
  const preview = flags.preview ?? (file.preview === true);
  const found = findWranglerConfig(cwd);
  if (found) settings.wranglerConfig = found;
  if (found && (!settings.namespaceId || !settings.accountId)) {
    const fromWrangler = wranglerSettings(readWranglerConfig(found.path), found.path, { ...(wranglerEnv ? { env: wranglerEnv } : {}), preview });
    const where = `${found.path}${wranglerEnv ? ` [env.${wranglerEnv}]` : ""}`;
    if (!settings.namespaceId && fromWrangler.namespaceId) {
      settings.namespaceId = fromWrangler.namespaceId;
      sources.namespaceId = `${KV_BINDING} ${preview ? "preview_id" : "id"} in ${where}`;
    }
    if (!settings.accountId && fromWrangler.accountId) {
      settings.accountId = fromWrangler.accountId;
      sources.accountId = `account_id in ${where}`;
    }
  }

  const timeoutRaw = flags.timeout ?? (typeof file.timeout === "number" ? String(file.timeout) : undefined);
  if (timeoutRaw !== undefined) {
    const ms = parseNumberFlag(flags.timeout !== undefined ? "--timeout" : `"timeout" in ${configPath}`, timeoutRaw, FLAG_BOUNDS.timeoutMs);
    settings.timeoutMs = ms;
    sources.timeoutMs = flags.timeout !== undefined ? "flag" : "config";
  }
  return settings;
}

/** The value, or an error that says exactly which flag or env var would supply it. */
export function requireSetting(settings: Settings, name: Exclude<SettingName, "timeoutMs" | "cfApiBase">, purpose: string): string {
  const value = settings[name];
  if (value) return value;
  if (name === "apiKey" && settings.localAdminDisabled) {
    throw new CliError(`${purpose} is disabled on the local stack: its .dev.vars sets ADMIN_API_KEY to an empty value (as \`wrangler dev\` would, it fails closed)`, {
      hint: "set ADMIN_API_KEY in .dev.vars (or delete the line to use the built-in dev key) and restart `npm start`",
    });
  }
  const { flag, env } = SETTING_SOURCES[name];
  const where = settings.wranglerConfig ? settings.wranglerConfig.path : "wrangler.json, wrangler.jsonc or wrangler.toml (none found from here upward)";
  const extra = name === "namespaceId" ? `, or a CACHE_DO_KV binding in ${where}` : name === "accountId" ? `, or account_id in ${where}` : "";
  throw new CliError(`${purpose} needs ${flag}${env ? ` or ${env}` : ""}${extra}`, {
    hint: `or put "${name}" in ${CONFIG_FILE_NAME}; \`tftcache --local …\` uses the local stack`,
  });
}
