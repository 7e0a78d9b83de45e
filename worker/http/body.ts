import { MAX_BODY_BYTES } from "../../protocol/index.js";
import { HttpError } from "./envelope.js";

/**
 * How much of a refused or unread body is read (and dropped) before the Worker answers. Under `wrangler dev` a
 * proxy sits in front of workerd, and a response sent while the request body is still unread (or cancelled)
 * makes the *next* request on that connection fail with 503 "Your worker restarted mid-request". Reading to the
 * end fixes that. Past this bound the body is cancelled: nobody sends a 20 MiB body to a 10 MiB API by mistake,
 * and reading it would let one request keep the Worker busy for as long as it likes.
 */
export const DRAIN_LIMIT_BYTES = 2 * MAX_BODY_BYTES;

/**
 * Reads a JSON body, refusing more than `limit` bytes without buffering them: a declared Content-Length over the
 * limit is refused up front, and an undeclared stream is cut off as soon as it passes the limit.
 */
export async function readJsonBody(request: Request, limit = MAX_BODY_BYTES): Promise<unknown> {
  const declared = Number(request.headers.get("content-length") ?? "NaN");
  if (Number.isFinite(declared) && declared > limit) {
    await discardBody(request);
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
      // Nothing past the limit is kept: the rest is read and dropped, then the 413 goes out.
      chunks.length = 0;
      await drain(reader, total);
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

/**
 * Reads an unread body to its end and drops it (see DRAIN_LIMIT_BYTES for why not `cancel()`), so the next
 * request on the connection is unaffected. A body already read, or errored, is left alone.
 */
export async function discardBody(request: Request): Promise<void> {
  if (!request.body || request.bodyUsed) return;
  let reader: ReadableStreamDefaultReader<Uint8Array>;
  try {
    reader = request.body.getReader();
  } catch {
    return; // locked: someone else is reading it
  }
  await drain(reader, 0);
}

async function drain(reader: ReadableStreamDefaultReader<Uint8Array>, alreadyRead: number): Promise<void> {
  let total = alreadyRead;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      total += value.byteLength;
      if (total > DRAIN_LIMIT_BYTES) {
        await reader.cancel();
        return;
      }
    }
  } catch {
    // The client went away mid-body: nothing left to drain.
  }
}
