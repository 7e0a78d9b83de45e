import { canonicalJson, compareKeys } from "./canonical.js";

/** One digest row: key, the value's canonical JSON text, and expiresAt (epoch ms). */
export type DigestRow = readonly [key: string, canonicalValue: string, expiresAt: number];

export const DIGEST_PREFIX = "sha256:";

/**
 * `sha256:` + hex SHA-256 of `JSON.stringify(rows)` where rows are `[key, value, expiresAt]` sorted by key and
 * every value canonicalised. Values arrive already canonical so the Worker can digest 10,000 entries without
 * re-parsing them; the string built here is byte-for-byte what `JSON.stringify` would produce.
 */
export async function digestRows(rows: readonly DigestRow[]): Promise<string> {
  const sorted = [...rows].sort((a, b) => compareKeys(a[0], b[0]));
  const body = sorted.map(([key, value, expiresAt]) => `[${JSON.stringify(key)},${value},${JSON.stringify(expiresAt)}]`);
  return sha256Hex(`[${body.join(",")}]`);
}

/** Digest of entries whose values are parsed JSON (what a reader of the KV snapshot has in hand). */
export async function digestEntries(
  entries: ReadonlyArray<readonly [string, { value: unknown; expiresAt: number }]>,
): Promise<string> {
  return digestRows(entries.map(([key, entry]) => [key, canonicalJson(entry.value), entry.expiresAt] as const));
}

/** `sha256:` + hex SHA-256 of the UTF-8 bytes of `text`: how a flushed snapshot body is fingerprinted. */
export async function sha256Hex(text: string): Promise<string> {
  const hash = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  let hex = "";
  for (const byte of new Uint8Array(hash)) hex += byte.toString(16).padStart(2, "0");
  return DIGEST_PREFIX + hex;
}
