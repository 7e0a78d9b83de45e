import { MAX_VALUE_DEPTH } from "./limits.js";

/** A value that canonical JSON refuses: it cannot be represented as JSON exactly, or is nested too deep. */
export class JsonValueError extends TypeError {
  override readonly name = "JsonValueError";
}

/** Thrown inside the walk; the path is filled in while it unwinds, so the hot path never builds strings. */
class Refusal {
  readonly path: string[] = [];
  constructor(readonly what: string) {}
}

/**
 * Canonical JSON: what the digest is computed over (design.md §2).
 *
 * Identical to `JSON.stringify(v)` after sorting every object's keys in JavaScript's default string order
 * (UTF-16 code units), recursively. Arrays keep their order. Both the Worker and the CLI call this, so a value
 * serialised on one side digests identically on the other.
 *
 * Like JSON.stringify it calls `toJSON` (a Date becomes its ISO string) and drops object properties that are
 * `undefined`. Unlike JSON.stringify it never changes a value silently: a Map or Set (which would become `{}`),
 * a function or symbol (dropped), NaN or Infinity (null), a BigInt, or an instance of any other class is
 * refused with a JsonValueError naming what and where. So is nesting deeper than MAX_VALUE_DEPTH, which would
 * otherwise overflow the stack of whoever walks the value next (this function, the digest, a reader).
 */
export function canonicalJson(value: unknown): string {
  try {
    return write(value, "", 0, []);
  } catch (err) {
    if (!(err instanceof Refusal)) throw err;
    const where = err.path.length === 0 ? "value" : `value${err.path.reverse().join("")}`;
    throw new JsonValueError(err.what.startsWith("nested") ? `value is ${err.what}` : `${where} is ${err.what}`);
  }
}

function write(input: unknown, key: string, depth: number, ancestors: object[]): string {
  let value = input;
  if (value !== null && (typeof value === "object" || typeof value === "bigint")) {
    const toJSON = (value as { toJSON?: unknown }).toJSON;
    if (typeof toJSON === "function") value = toJSON.call(value, key);
  }
  switch (typeof value) {
    case "string":
      return JSON.stringify(value);
    case "boolean":
      return value ? "true" : "false";
    case "number":
      if (!Number.isFinite(value)) throw new Refusal(`${value}, which JSON cannot represent`);
      return JSON.stringify(value);
    case "undefined":
      throw new Refusal("undefined, which JSON cannot represent");
    case "bigint":
      throw new Refusal("a BigInt, which JSON cannot represent (convert it to a string or number)");
    case "function":
    case "symbol":
      throw new Refusal(`a ${typeof value}, which JSON cannot represent`);
  }
  if (value === null) return "null";
  // Ancestors are at most MAX_VALUE_DEPTH deep, so this check stays cheap; it names a cycle for what it is.
  if (ancestors.includes(value as object)) throw new Refusal("a reference to itself (a cycle), which JSON cannot represent");
  if (depth >= MAX_VALUE_DEPTH) throw new Refusal(`nested deeper than ${MAX_VALUE_DEPTH} levels of arrays and objects (the limit)`);
  let i = 0;
  let k = "";
  ancestors.push(value as object);
  try {
    if (Array.isArray(value)) {
      let out = "[";
      for (; i < value.length; i++) {
        const item = value[i];
        // JSON.stringify writes an undefined array slot as null: the array keeps its length, nothing is lost.
        out += (i === 0 ? "" : ",") + (item === undefined ? "null" : write(item, String(i), depth + 1, ancestors));
      }
      ancestors.pop();
      return `${out}]`;
    }
    const proto = Object.getPrototypeOf(value);
    if (proto !== Object.prototype && proto !== null) {
      if (value instanceof Number || value instanceof String || value instanceof Boolean) {
        ancestors.pop();
        return write(value.valueOf(), key, depth, ancestors);
      }
      const name = (proto as { constructor?: { name?: string } }).constructor?.name || "non-plain object";
      throw new Refusal(`${/^[AEIOU]/i.test(name) ? "an" : "a"} ${name}, which JSON cannot represent exactly (convert it to a plain object or array)`);
    }
    const record = value as Record<string, unknown>;
    const parts: string[] = [];
    for (k of Object.keys(record).sort()) {
      const item = record[k];
      if (item === undefined) continue;
      parts.push(`${JSON.stringify(k)}:${write(item, k, depth + 1, ancestors)}`);
    }
    ancestors.pop();
    return `{${parts.join(",")}}`;
  } catch (err) {
    ancestors.length = depth; // unwinding: this level and below are no longer ancestors
    if (err instanceof Refusal && !err.what.startsWith("nested")) {
      if (Array.isArray(value)) err.path.push(`[${i}]`);
      else if (k !== "") err.path.push(/^[A-Za-z_$][\w$]*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`);
    }
    throw err;
  }
}

/** Default-order comparison (UTF-16 code units), spelled out so sorts of [key, …] tuples can use it. */
export function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
