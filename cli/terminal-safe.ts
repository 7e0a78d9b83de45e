/**
 * Keys and values come from whoever can write to the cache (any Worker with the service binding), and error
 * messages from servers: printed raw, an ESC sequence could clear an operator's screen, retitle the terminal or
 * hide text, a carriage return could overwrite the line, and a bidi override could make one key look like
 * another. Every key, value and server-supplied text that reaches a terminal in human output passes through one
 * of these functions. `--json` keeps every string exact (JSON escapes are decoded by any parser).
 *
 * Escaped: C0 controls and DEL, C1 controls (U+0080–U+009F), every Unicode format character (bidi controls
 * such as U+202E, zero-width characters, the BOM), the line and paragraph separators, and unpaired surrogates.
 */
const UNSAFE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/u;
const UNSAFE_ALL = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}]/gu;
const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

const hex = (n: number, width: number) => n.toString(16).padStart(width, "0");

/** `\x1b`, `\u202e`, `\u{e0001}`, or `\n`/`\r`/`\t`: the shapes git and `ls -b` use. */
function escapeChar(ch: string): string {
  const named = NAMED[ch];
  if (named) return named;
  const cp = ch.codePointAt(0)!;
  if (cp <= 0xff) return `\\x${hex(cp, 2)}`;
  if (cp <= 0xffff) return `\\u${hex(cp, 4)}`;
  return `\\u{${hex(cp, 0)}}`;
}

/** True when printing `text` raw could move the cursor, change the terminal, or hide or reorder characters. */
export function hasUnsafeChars(text: string): boolean {
  return UNSAFE.test(text);
}

/**
 * Free text (an error message, a reason, a server's version string): unsafe characters become visible escapes,
 * everything else is unchanged. Use `displayKey` or `quoted` for keys, so that escapes stay unambiguous.
 */
export function safeText(text: string): string {
  return text.replace(UNSAFE_ALL, escapeChar);
}

/** Multi-line free text: like `safeText`, but line breaks stay line breaks. */
export function safeLines(text: string): string {
  return text.split("\n").map(safeText).join("\n");
}

const SGR = /(\x1b\[[0-9;]*m)/;

/**
 * The last line of defence for everything the CLI prints: `safeLines`, except that colour codes (SGR, which is
 * all chalk emits) survive when the caller coloured the text itself. Keys and values are escaped before they
 * are coloured, so an escape sequence inside one never reaches here intact.
 */
export function safeOutput(text: string, keepColour: boolean): string {
  if (!keepColour) return safeLines(text);
  return text
    .split(SGR)
    .map((part, i) => (i % 2 === 1 ? part : safeLines(part)))
    .join("");
}

/**
 * Always quoted, C-style: `"quote:AAPL"`, `"a\x1b[2Jb"`, `""`. Backslashes and quotes inside are escaped, so
 * the printed form maps back to exactly one string. For keys inside a sentence.
 */
export function quoted(text: string): string {
  return `"${text.replace(/["\\]/g, (c) => `\\${c}`).replace(UNSAFE_ALL, escapeChar)}"`;
}

/**
 * A key in a list or table: as is when it is plain, quoted (like git's core.quotePath) when it holds anything
 * that must be escaped, or a quote or backslash, so a plain key can never be mistaken for an escaped one.
 */
export function displayKey(key: string): string {
  return UNSAFE.test(key) || /["\\]/.test(key) ? quoted(key) : key;
}

/**
 * JSON text that is safe on a terminal and still valid JSON for the same value: JSON.stringify already escapes
 * C0 controls inside strings; this also writes DEL, C1 controls, format characters (bidi overrides), U+2028/9
 * and lone surrogates as `\uXXXX`. Newlines outside strings (pretty printing) are structure and stay.
 */
export function safeJson(value: unknown, indent?: number): string {
  return jsonEscape(JSON.stringify(value, null, indent));
}

/** The escaping half of `safeJson`, for JSON text already serialised. */
export function jsonEscape(json: string): string {
  return json.replace(UNSAFE_ALL, (ch) => {
    if (ch === "\n") return ch;
    let out = "";
    for (let i = 0; i < ch.length; i++) out += `\\u${hex(ch.charCodeAt(i), 4)}`;
    return out;
  });
}
