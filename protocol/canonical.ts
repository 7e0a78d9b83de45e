/**
 * Canonical JSON: what the digest is computed over (design.md §2).
 *
 * Identical to `JSON.stringify(v)` after sorting every object's keys in JavaScript's default string order
 * (UTF-16 code units), recursively. Arrays keep their order. Both the Worker and the CLI call this, so a value
 * serialised on one side digests identically on the other.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    const text = JSON.stringify(value);
    // JSON.stringify(undefined) is undefined; values reaching here came from JSON.parse, so this only fires on
    // programming errors (a function or undefined smuggled in through RPC).
    if (text === undefined) throw new TypeError("value is not representable as JSON");
    return text;
  }
  if (Array.isArray(value)) {
    // JSON.stringify writes undefined array slots as null; do the same.
    return `[${value.map((item) => (item === undefined ? "null" : canonicalJson(item))).join(",")}]`;
  }
  const record = value as Record<string, unknown>;
  const parts: string[] = [];
  for (const key of Object.keys(record).sort()) {
    const item = record[key];
    if (item === undefined || typeof item === "function" || typeof item === "symbol") continue;
    parts.push(`${JSON.stringify(key)}:${canonicalJson(item)}`);
  }
  return `{${parts.join(",")}}`;
}

/** Default-order comparison (UTF-16 code units), spelled out so sorts of [key, …] tuples can use it. */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
