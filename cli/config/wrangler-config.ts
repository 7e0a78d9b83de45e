import { readFileSync } from "node:fs";
import { basename, dirname, join, resolve } from "node:path";
import { parse as parseToml } from "smol-toml";
import { CliError } from "../errors.js";
import { findUp, isFile } from "./find-up.js";
import { JsoncError, parseJsonc } from "./jsonc.js";

export const KV_BINDING = "CACHE_DO_KV";

/** wrangler's configuration file names, in the order it prefers them. */
export const WRANGLER_CONFIG_NAMES = ["wrangler.json", "wrangler.jsonc", "wrangler.toml"] as const;

export interface FoundWranglerConfig {
  path: string;
  /**
   * A nearer config of a less preferred format that wrangler (and so tftcache) passes over: wrangler searches
   * every parent folder for wrangler.json before it looks for wrangler.jsonc, then wrangler.toml.
   */
  shadowed?: string;
}

/**
 * The wrangler configuration `wrangler deploy` would use from `cwd`, found as wrangler 4 finds it
 * (`findWranglerConfig` in workers-sdk's config-helpers.ts): `wrangler.json` searched upward to the filesystem
 * root, then `wrangler.jsonc`, then `wrangler.toml`, the first found wins. So a project with only a wrangler.jsonc
 * under a parent wrangler.toml reads its own file, and a wrangler.json in a parent folder wins over a nearer
 * wrangler.toml exactly as it does for wrangler (reported as `shadowed`, so doctor can say so).
 */
export function findWranglerConfig(cwd: string): FoundWranglerConfig | null {
  let found: string | null = null;
  for (const name of WRANGLER_CONFIG_NAMES) {
    found = findUp(name, cwd);
    if (found) break;
  }
  if (!found) return null;
  // Is there a nearer file of another format? Then wrangler's order, not distance, decided.
  const foundDir = dirname(found);
  let dir = resolve(cwd);
  while (dir !== foundDir) {
    for (const name of WRANGLER_CONFIG_NAMES) {
      const candidate = join(dir, name);
      if (isFile(candidate)) return { path: found, shadowed: candidate };
    }
    const parent = dirname(dir);
    if (parent === dir) break;
    dir = parent;
  }
  return { path: found };
}

/** Reads and parses a wrangler config: TOML, or JSON with comments and trailing commas. A BOM is skipped. */
export function readWranglerConfig(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new CliError(`cannot read ${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
  }
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  let doc: unknown;
  try {
    doc = path.endsWith(".toml") ? parseToml(text) : parseJsonc(text);
  } catch (err) {
    const what = err instanceof JsoncError ? err.message : (err as Error).message.split("\n")[0];
    throw new CliError(`cannot parse ${path}: ${what}`, { hint: `${basename(path)} must be valid ${path.endsWith(".toml") ? "TOML" : "JSON (comments and trailing commas allowed)"}` });
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) throw new CliError(`cannot parse ${path}: not an object at the top level`);
  return doc as Record<string, unknown>;
}

interface KvNamespaceEntry {
  binding?: string;
  id?: string;
  preview_id?: string;
}

export interface WranglerSettings {
  /** CACHE_DO_KV's `id` (or `preview_id` with preview), from the top level or the selected environment. */
  namespaceId: string | null;
  /** `account_id`: the environment's, else the top level's (wrangler inherits it into environments). */
  accountId: string | null;
}

/**
 * What tftcache takes from a wrangler config: the CACHE_DO_KV namespace id (`id`, or `preview_id` with
 * `--preview`) from the top level or from `env.<name>` with `--env` (wrangler environments do not inherit
 * kv_namespaces, so neither do we), and `account_id` (which environments do inherit).
 */
export function wranglerSettings(doc: Record<string, unknown>, path: string, opts: { env?: string; preview?: boolean }): WranglerSettings {
  let scope: Record<string, unknown> = doc;
  if (opts.env) {
    const envs = (doc.env ?? {}) as Record<string, Record<string, unknown>>;
    const selected = Object.prototype.hasOwnProperty.call(envs, opts.env) ? envs[opts.env] : undefined;
    if (!selected || typeof selected !== "object") throw new CliError(`wrangler environment "${opts.env}" is not defined in ${path}`, { hint: `defined: ${Object.keys(envs).join(", ") || "none"}` });
    scope = selected;
  }
  const namespaces = Array.isArray(scope.kv_namespaces) ? (scope.kv_namespaces as KvNamespaceEntry[]) : [];
  const entry = namespaces.find((ns) => ns && ns.binding === KV_BINDING);
  const id = entry ? (opts.preview ? entry.preview_id : entry.id) : undefined;
  const account = typeof scope.account_id === "string" ? scope.account_id : typeof doc.account_id === "string" ? doc.account_id : undefined;
  return { namespaceId: typeof id === "string" && id !== "" ? id : null, accountId: account && account !== "" ? account : null };
}
