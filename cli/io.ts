/** What a command may touch. The real process in bin/, in-memory streams in tests. */
export interface Io {
  stdout: { write(text: string): unknown; isTTY?: boolean; columns?: number };
  stderr: { write(text: string): unknown; isTTY?: boolean };
  stdin: NodeJS.ReadableStream & { isTTY?: boolean };
  env: NodeJS.ProcessEnv;
  cwd: string;
  /** Resolves when the user interrupts (Ctrl-C). */
  onInterrupt(listener: () => void): () => void;
}

/**
 * Whether stdout carries the command's payload (an export) rather than a view of it. `tftcache list | head`
 * closing the pipe early is fine; `tftcache export - | uploader` losing its reader is a failed backup.
 */
// One object per process, not per module copy: bin/ runs a bundle of the start-up path (dist/cli/entry.js) while
// commands load tsc's own files, so this module can exist twice.
const ROLE = Symbol.for("tftcache.stdoutRole");
export const stdoutRole: { payload: boolean } = ((globalThis as Record<symbol, unknown>)[ROLE] ??= { payload: false }) as { payload: boolean };
