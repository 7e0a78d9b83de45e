import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

/** What `npm start` writes so that `tftcache --local` needs no exports. */
export interface LocalStackInfo {
  url: string;
  apiKey: string;
  accountId: string;
  apiToken: string;
  namespaceId: string;
  cfApiBase: string;
}

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

export function readLocalStackInfo(cwd: string): LocalStackInfo {
  const file = join(cwd, LOCAL_STACK_FILE);
  if (!existsSync(file)) return LOCAL_DEFAULTS;
  try {
    return { ...LOCAL_DEFAULTS, ...(JSON.parse(readFileSync(file, "utf8")) as Partial<LocalStackInfo>) };
  } catch {
    return LOCAL_DEFAULTS;
  }
}
