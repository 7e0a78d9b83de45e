/**
 * Secrets never reach the terminal, a log or a CI transcript: every line the CLI prints passes through this.
 * Very short values are skipped because masking them would mangle unrelated text, and no real key is that short.
 */
export function createRedactor(secrets: Array<string | undefined>): (text: string) => string {
  const values = [...new Set(secrets.filter((s): s is string => typeof s === "string" && s.length >= 4))].sort((a, b) => b.length - a.length);
  if (values.length === 0) return (text) => text;
  return (text) => {
    let out = text;
    for (const secret of values) out = out.split(secret).join("***");
    return out;
  };
}
