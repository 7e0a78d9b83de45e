import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { parse } from "smol-toml";
import { CliError } from "../errors.js";

export const KV_BINDING = "CACHE_DO_KV";

/** The nearest wrangler.toml at or above `cwd`, as wrangler itself finds it. */
export function findWranglerToml(cwd: string): string | null {
  let dir = cwd;
  for (;;) {
    const candidate = join(dir, "wrangler.toml");
    if (existsSync(candidate)) return candidate;
    const parent = dirname(dir);
    if (parent === dir) return null;
    dir = parent;
  }
}

interface KvNamespaceEntry {
  binding?: string;
  id?: string;
  preview_id?: string;
}

/**
 * The CACHE_DO_KV namespace id from wrangler.toml: `id`, or `preview_id` with `--preview`, from the top level or
 * from `[env.<name>]` with `--env` (wrangler environments do not inherit kv_namespaces, so neither do we).
 */
export function namespaceFromWranglerToml(path: string, opts: { env?: string; preview?: boolean }): string | null {
  let doc: Record<string, unknown>;
  try {
    doc = parse(readFileSync(path, "utf8")) as Record<string, unknown>;
  } catch (err) {
    throw new CliError(`cannot read ${path}: ${(err as Error).message}`);
  }
  let scope: Record<string, unknown> = doc;
  if (opts.env) {
    const envs = (doc.env ?? {}) as Record<string, Record<string, unknown>>;
    const selected = envs[opts.env];
    if (!selected) throw new CliError(`wrangler environment "${opts.env}" is not defined in ${path}`, { hint: `defined: ${Object.keys(envs).join(", ") || "none"}` });
    scope = selected;
  }
  const namespaces = (scope.kv_namespaces ?? []) as KvNamespaceEntry[];
  const entry = namespaces.find((ns) => ns.binding === KV_BINDING);
  if (!entry) return null;
  return (opts.preview ? entry.preview_id : entry.id) ?? null;
}
