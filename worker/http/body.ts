import { MAX_BODY_BYTES } from "../../protocol/index.js";
import { HttpError } from "./envelope.js";

/**
 * Reads a JSON body, refusing more than `limit` bytes without buffering them: a declared Content-Length over the
 * limit is refused up front, and an undeclared stream is cut off as soon as it passes the limit.
 */
export async function readJsonBody(request: Request, limit = MAX_BODY_BYTES): Promise<unknown> {
  const declared = Number(request.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > limit) {
    await request.body?.cancel();
    throw new HttpError(413, "too_large", `request body is ${declared} bytes; the limit is ${limit}`);
  }
  if (!request.body) throw new HttpError(400, "bad_request", "request body is empty; expected JSON");
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > limit) {
      await reader.cancel();
      throw new HttpError(413, "too_large", `request body is larger than ${limit} bytes`);
    }
    chunks.push(value);
  }
  const bytes = new Uint8Array(total);
  let offset = 0;
  for (const chunk of chunks) {
    bytes.set(chunk, offset);
    offset += chunk.byteLength;
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw new HttpError(400, "bad_request", "request body is not valid UTF-8");
  }
  if (text.trim() === "") throw new HttpError(400, "bad_request", "request body is empty; expected JSON");
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new HttpError(400, "bad_request", `request body is not valid JSON: ${(err as Error).message}`);
  }
}

/** Drains an unread body so the runtime can reuse the connection (a workerd hazard when answering early). */
export async function discardBody(request: Request): Promise<void> {
  try {
    await request.body?.cancel();
  } catch {
    // Already consumed or errored: nothing left to release.
  }
}
