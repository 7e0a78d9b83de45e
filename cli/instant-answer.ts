/**
 * `tftcache --version`, and `tftcache --help` when stdout is not a terminal, print text that never changes between
 * builds of the CLI. Loading commander and declaring the program is most of what those runs cost above
 * `node -e 0` (issue 13: ≤ 1.3×), so `npm run build` runs the real program once for each, keeps what it printed
 * (cli/build-entry.mjs), and bin/tftcache prints that without loading anything else. test/e2e/startup.test.ts
 * holds the kept text byte-equal to what commander prints now.
 *
 * On a terminal, commander wraps help to the terminal's width, so help on a TTY always goes through commander.
 */
export interface InstantTexts {
  /** What `tftcache --version` prints. */
  readonly version: string;
  /** What `tftcache --help` prints when stdout is not a TTY (commander wraps at 80 columns then). */
  readonly help: string;
}

/** The text `argv` would print, or null when the program has to run. */
export function instantText(argv: readonly string[], stdoutIsTTY: boolean, texts: InstantTexts): string | null {
  if (argv.length !== 1) return null;
  const [arg] = argv;
  if (arg === "--version" || arg === "-V") return texts.version;
  if ((arg === "--help" || arg === "-h") && !stdoutIsTTY) return texts.help;
  return null;
}

/** bin/tftcache's first step: prints the kept answer and returns true, or prints nothing and returns false. */
export function answerInstantly(texts: InstantTexts): boolean {
  const text = instantText(process.argv.slice(2), process.stdout.isTTY === true, texts);
  if (text === null) return false;
  // `tftcache --help | head -1` closes the pipe early: that is not an error (as in cli/main.ts).
  process.stdout.on("error", (err: NodeJS.ErrnoException) => {
    if (err.code !== "EPIPE") throw err;
  });
  process.stdout.write(text);
  return true;
}
