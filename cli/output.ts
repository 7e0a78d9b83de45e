import { Chalk, type ChalkInstance } from "chalk";
import Table from "cli-table3";
import type { Io } from "./io.js";
import { jsonEscape, safeOutput } from "./terminal-safe.js";

/**
 * Everything a command prints goes through here. stdout carries the result (one JSON document with --json);
 * stderr carries progress, warnings and errors. Every line is redacted, and made safe for a terminal: control
 * characters and bidi overrides that slipped past the per-key escaping (cli/terminal-safe.ts) are escaped here,
 * and JSON keeps every string exact but writes those characters as \u escapes.
 */
export class Output {
  readonly chalk: ChalkInstance;
  readonly json: boolean;

  constructor(
    private readonly io: Io,
    opts: { json: boolean; color: boolean },
    private readonly redact: (text: string) => string,
  ) {
    this.json = opts.json;
    // chalk does not read NO_COLOR itself; the caller folds NO_COLOR, --no-color and "is this a TTY" into `color`.
    this.chalk = new Chalk({ level: opts.color && !opts.json && io.stdout.isTTY ? 1 : 0 });
  }

  /** Redacted, then escaped: a secret is masked even if it contains a character that would be escaped. */
  private safe(text: string): string {
    return safeOutput(this.redact(text), this.chalk.level > 0);
  }

  /** The result on stdout. */
  print(text = ""): void {
    this.io.stdout.write(`${this.safe(text)}\n`);
  }

  /** The one JSON document of a --json run. */
  document(value: unknown): void {
    this.io.stdout.write(`${jsonEscape(this.redact(JSON.stringify(value, null, 2)))}\n`);
  }

  /** One compact JSON line (NDJSON, `stats --watch --json`). */
  jsonLine(value: unknown): void {
    this.io.stdout.write(`${jsonEscape(this.redact(JSON.stringify(value)))}\n`);
  }

  /** Notes, progress and warnings: stderr, so stdout stays parseable. */
  note(text: string): void {
    this.io.stderr.write(`${this.safe(text)}\n`);
  }

  warn(text: string): void {
    this.note(`${this.chalk.yellow("warning:")} ${text}`);
  }

  /** Progress only on an interactive stderr, overwritten in place. */
  progress(text: string): void {
    if (this.io.stderr.isTTY && !this.json) this.io.stderr.write(`\r\x1b[2K${this.safe(text)}`);
  }

  endProgress(): void {
    if (this.io.stderr.isTTY && !this.json) this.io.stderr.write("\r\x1b[2K");
  }

  table(head: string[], rows: Array<Array<string | number>>): string {
    const table = new Table({
      head: head.map((h) => this.chalk.bold(h)),
      style: { head: [], border: [] },
      chars: COMPACT,
      wordWrap: true,
    });
    for (const row of rows) table.push(row.map(String));
    return table.toString();
  }

  /** Two-column key/value table, the shape of `stats` and `doctor`. */
  pairs(rows: Array<[string, string | number]>): string {
    const table = new Table({ style: { head: [], border: [] }, chars: COMPACT });
    for (const [k, v] of rows) table.push({ [this.chalk.bold(k)]: String(v) });
    return table.toString();
  }
}

/** No rule between rows: a 13-row stats table should fit a small terminal. */
const COMPACT = { mid: "", "left-mid": "", "mid-mid": "", "right-mid": "" };

export function formatBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

/** "in 5m", "3s ago": relative to `now`, for times users scan rather than compute. */
export function formatRelative(ms: number | null | undefined, now = Date.now()): string {
  if (ms === null || ms === undefined || ms === 0) return "never";
  const delta = ms - now;
  const abs = Math.abs(delta);
  const unit = abs < 60_000 ? `${Math.round(abs / 1000)}s` : abs < 3_600_000 ? `${Math.round(abs / 60_000)}m` : abs < 86_400_000 ? `${(abs / 3_600_000).toFixed(1)}h` : `${(abs / 86_400_000).toFixed(1)}d`;
  return delta >= 0 ? `in ${unit}` : `${unit} ago`;
}
