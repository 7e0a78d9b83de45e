/**
 * JSON with comments and trailing commas, as wrangler reads wrangler.json and wrangler.jsonc (both files go
 * through the same parser there, with `allowTrailingComma`). Comments and trailing commas are blanked out with
 * spaces, so every other character keeps its offset and a syntax error points at the right line and column.
 */
export class JsoncError extends Error {
  constructor(
    message: string,
    readonly line: number,
    readonly column: number,
  ) {
    super(message);
  }
}

/** `text` with `//` and `/* *\/` comments and trailing commas replaced by spaces (newlines kept). */
export function stripJsonc(text: string): string {
  const out = text.split("");
  let i = 0;
  /** Offset of the last comma seen outside strings, if only whitespace and comments followed it. */
  let pendingComma = -1;
  const blank = (from: number, to: number) => {
    for (let j = from; j < to; j++) if (out[j] !== "\n" && out[j] !== "\r") out[j] = " ";
  };
  while (i < text.length) {
    const ch = text[i]!;
    if (ch === '"') {
      pendingComma = -1;
      i++;
      while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
      i++;
    } else if (ch === "/" && text[i + 1] === "/") {
      const end = text.indexOf("\n", i);
      const stop = end === -1 ? text.length : end;
      blank(i, stop);
      i = stop;
    } else if (ch === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      if (end === -1) {
        const { line, column } = lineColumn(text, i);
        throw new JsoncError(`unterminated /* comment at line ${line}, column ${column}`, line, column);
      }
      blank(i, end + 2);
      i = end + 2;
    } else if (ch === ",") {
      pendingComma = i;
      i++;
    } else if (ch === "}" || ch === "]") {
      if (pendingComma !== -1) out[pendingComma] = " ";
      pendingComma = -1;
      i++;
    } else {
      if (!/\s/.test(ch)) pendingComma = -1;
      i++;
    }
  }
  return out.join("");
}

export function lineColumn(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let lastBreak = -1;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text[i] === "\n") {
      line++;
      lastBreak = i;
    }
  }
  return { line, column: offset - lastBreak };
}

/** Parses JSONC; a syntax error says where (line and column), not just "Unexpected token". */
export function parseJsonc(text: string): unknown {
  const stripped = stripJsonc(text);
  try {
    return JSON.parse(stripped);
  } catch (err) {
    const message = (err as Error).message;
    const at = /position (\d+)/.exec(message);
    if (at) {
      const { line, column } = lineColumn(stripped, Number(at[1]));
      throw new JsoncError(`${message.replace(/ in JSON at position \d+.*$/, "").replace(/\s*\(line \d+ column \d+\)$/, "")} at line ${line}, column ${column}`, line, column);
    }
    throw new JsoncError(message, 0, 0);
  }
}
