/** Exit codes (design.md §4): CI tells drift (1) from breakage (2). */
export const EXIT = { OK: 0, DRIFT: 1, ERROR: 2, INTERRUPTED: 130 } as const;

/** An error the user can act on: one line of message, an optional hint on what to do next. */
export class CliError extends Error {
  readonly exitCode: number;
  readonly hint: string | undefined;

  constructor(message: string, opts: { exitCode?: number; hint?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.exitCode = opts.exitCode ?? EXIT.ERROR;
    this.hint = opts.hint;
  }
}

/** Raised when the user presses Ctrl-C in the middle of work that reports how far it got. */
export class InterruptedError extends CliError {
  constructor(message: string) {
    super(message, { exitCode: EXIT.INTERRUPTED });
  }
}
