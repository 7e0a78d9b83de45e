import { MAX_SEED_ENTRIES, MAX_TTL_SECONDS } from "../protocol/index.js";
import { CliError } from "./errors.js";

/**
 * Bounds of every numeric flag, in one place so the help text, the README and the checks agree. Each bound
 * keeps the value well inside what Node's timers and the Worker accept (setTimeout overflows past 2^31-1 ms).
 */
export const FLAG_BOUNDS = {
  /** --timeout, per request: 1 ms to 10 minutes. */
  timeoutMs: { min: 1, max: 600_000, integer: true, unit: "milliseconds" },
  /** stats --watch: no faster than twice a second (redis-cli's --stat floor is similar), at most once a day. */
  watchSeconds: { min: 0.5, max: 86_400, integer: false, unit: "seconds" },
  /** list --limit. */
  limit: { min: 1, max: 1_000_000, integer: true, unit: "keys" },
  /** seed --ttl: the Worker's own TTL bound (MAX_TTL_SECONDS, ten years). */
  ttlSeconds: { min: 0.001, max: MAX_TTL_SECONDS, integer: false, unit: "seconds" },
  /** seed --batch: MAX_SEED_ENTRIES, what one seed request may carry. */
  batch: { min: 1, max: MAX_SEED_ENTRIES, integer: true, unit: "entries" },
  /** verify-kv --max-lag-seconds: zero (no lag at all) to a day. */
  maxLagSeconds: { min: 0, max: 86_400, integer: false, unit: "seconds" },
} as const;

export type FlagBounds = (typeof FLAG_BOUNDS)[keyof typeof FLAG_BOUNDS];

const fmt = (n: number) => n.toLocaleString("en-US", { maximumFractionDigits: 3 });

/**
 * A plain decimal number within bounds, or a usage error (exit 2) that names the flag, the range and what was
 * given. Hex, exponents, `Infinity`, signs and empty strings are refused rather than guessed at.
 */
export function parseNumberFlag(flag: string, raw: string | number, bounds: FlagBounds): number {
  const text = String(raw).trim();
  const shape = bounds.integer ? /^\d+$/ : /^(\d+(\.\d*)?|\.\d+)$/;
  const n = Number(text);
  const kind = bounds.integer ? "a whole number of" : "a number of";
  if (!shape.test(text) || !Number.isFinite(n) || n < bounds.min || n > bounds.max) {
    throw new CliError(`${flag} must be ${kind} ${bounds.unit} from ${fmt(bounds.min)} to ${fmt(bounds.max)} (got ${JSON.stringify(String(raw))})`);
  }
  return n;
}
