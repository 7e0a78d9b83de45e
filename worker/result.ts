import type { ErrorCode } from "../protocol/index.js";

/**
 * What a DO method returns across RPC. Expected failures travel as values, not exceptions: a thrown error
 * crossing RPC loses its type and invites a 500, and bad input must never be a 500.
 */
export type Result<T> = { ok: true; data: T } | { ok: false; status: number; code: ErrorCode; message: string; details?: unknown };

export const ok = <T>(data: T): Result<T> => ({ ok: true, data });
export const fail = (status: number, code: ErrorCode, message: string, details?: unknown): Result<never> => ({
  ok: false,
  status,
  code,
  message,
  ...(details === undefined ? {} : { details }),
});
