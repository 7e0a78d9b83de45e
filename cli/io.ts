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
