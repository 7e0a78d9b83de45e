import type { ErrorCode } from "../../protocol/index.js";
import type { Result } from "../result.js";

const JSON_HEADERS = { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" };

export function json(data: unknown, status = 200, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify({ success: true, data }), { status, headers: { ...JSON_HEADERS, ...headers } });
}

/** A success envelope around JSON text we already hold (a value, a snapshot): no parse, no re-stringify. */
export function rawJson(dataJson: string, status = 200): Response {
  return new Response(`{"success":true,"data":${dataJson}}`, { status, headers: JSON_HEADERS });
}

export function error(status: number, code: ErrorCode, message: string, details?: unknown, headers: Record<string, string> = {}): Response {
  const body = { success: false, error: { code, message, ...(details === undefined ? {} : { details }) } };
  return new Response(JSON.stringify(body), { status, headers: { ...JSON_HEADERS, ...headers } });
}

export function fromResult<T>(result: Result<T>, status = 200): Response {
  return result.ok ? json(result.data, status) : error(result.status, result.code, result.message, result.details);
}

/** Thrown by request parsing helpers; the router turns it into an error envelope. */
export class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly code: ErrorCode,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}
