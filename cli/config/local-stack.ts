import { readFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { CliError } from "../errors.js";
import { findUp } from "./find-up.js";

/** What `npm start` writes so that `tftcache --local` needs no exports. */
export interface LocalStackInfo {
  url: string;
  /** Empty when the stack runs with the admin API disabled (.dev.vars sets ADMIN_API_KEY to ""). */
  apiKey: string;
  accountId: string;
  apiToken: string;
  namespaceId: string;
  cfApiBase: string;
  /** Where the stack's admin key came from (written by `npm start`; absent in files from older versions). */
  adminKeySource?: AdminKeySource;
}

/** `dev-vars`: ADMIN_API_KEY in .dev.vars; `default`: the built-in dev key; `disabled`: set to "" on purpose. */
export type AdminKeySource = "dev-vars" | "default" | "disabled" | "option";

export const LOCAL_STACK_FILE = join(".wrangler", "tftcache-local.json");

/** Fixed development credentials: the local stack uses these unless told otherwise, so they are no secret. */
export const LOCAL_DEFAULTS: LocalStackInfo = {
  url: "http://127.0.0.1:8787",
  apiKey: "local-dev-admin-key",
  accountId: "local-account",
  apiToken: "local-dev-api-token",
  namespaceId: "00000000000000000000000000000002",
  cfApiBase: "http://127.0.0.1:8788/client/v4",
};

/** The nearest `.wrangler/tftcache-local.json` at or above `cwd` (as wrangler finds its config), or null. */
export function findLocalStackFile(cwd: string): string | null {
  return findUp(LOCAL_STACK_FILE, cwd);
}

/**
 * The running stack's settings, from the nearest state file `npm start` wrote. No file, or one that does not
 * parse, is an error that says where we looked and what to run: guessing 127.0.0.1:8787 would silently talk to
 * whatever happens to listen there.
 */
export function readLocalStackInfo(cwd: string): LocalStackInfo & { file: string } {
  const file = findLocalStackFile(cwd);
  if (!file) {
    throw new CliError(`--local: no local stack file found (searched for ${LOCAL_STACK_FILE} from ${resolve(cwd)} upward)`, {
      hint: "start the local stack with `npm start` in the tftcache repository and run tftcache from inside it, or export the lines `npm start` prints and drop --local",
    });
  }
  let doc: unknown;
  try {
    doc = JSON.parse(readFileSync(file, "utf8"));
  } catch (err) {
    throw new CliError(`--local: cannot read ${file}: ${(err as Error).message}`, { hint: "restart the local stack (`npm start`): it rewrites this file" });
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc) || typeof (doc as { url?: unknown }).url !== "string") {
    throw new CliError(`--local: ${file} is not a local stack file (no "url")`, { hint: "restart the local stack (`npm start`): it rewrites this file" });
  }
  return { ...LOCAL_DEFAULTS, ...(doc as Partial<LocalStackInfo>), file };
}
