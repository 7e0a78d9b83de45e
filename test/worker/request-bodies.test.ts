import { beforeEach, describe, expect, it } from "vitest";
import { MAX_BODY_BYTES, MAX_VALUE_DEPTH } from "../../protocol/index.js";
import { DRAIN_LIMIT_BYTES } from "../../worker/http/body.js";
import { ADMIN_KEY, api, apiJson, entryPath, freshState, postJson, putJson } from "./helpers.js";

beforeEach(freshState);

/** A request body produced lazily, 64 KiB at a time, that records how much the Worker read and whether it cancelled. */
function meteredBody(totalBytes: number) {
  const chunk = new Uint8Array(64 * 1024).fill(0x20);
  const meter = { pulled: 0, cancelled: false, done: false };
  const stream = new ReadableStream<Uint8Array>({
    pull(controller) {
      if (meter.pulled >= totalBytes) {
        meter.done = true;
        controller.close();
        return;
      }
      const n = Math.min(chunk.byteLength, totalBytes - meter.pulled);
      meter.pulled += n;
      controller.enqueue(chunk.subarray(0, n));
    },
    cancel() {
      meter.cancelled = true;
    },
  });
  return { stream, meter };
}

describe("a refused request's body is read to the end, not cancelled (wrangler dev's proxy breaks the next request otherwise)", () => {
  const cases: Array<[string, string, string, string | null, number]> = [
    ["a 600-byte key", "PUT", entryPath("k".repeat(600)), ADMIN_KEY, 400],
    ["a wrong key", "PUT", entryPath("k"), "wrong-key", 401],
    ["no key", "PUT", entryPath("k"), null, 401],
    ["an unknown path", "POST", "/nope", ADMIN_KEY, 404],
    ["an unknown admin path", "POST", "/api/v1/cache/nope", ADMIN_KEY, 404],
    ["a method not allowed", "POST", "/api/v1/cache/stats", ADMIN_KEY, 405],
    ["a body on POST /flush", "POST", "/api/v1/cache/flush", ADMIN_KEY, 200],
    ["a body on /health", "POST", "/health", ADMIN_KEY, 405],
  ];
  it.each(cases)("%s (%s %s): answered, with the 100 KB body drained", async (_, method, path, key, status) => {
    const { stream, meter } = meteredBody(100 * 1024);
    const res = await api(path, { method, key, body: stream, duplex: "half" } as RequestInit & { key: string | null });
    expect(res.status).toBe(status);
    expect(meter).toMatchObject({ done: true, cancelled: false, pulled: 100 * 1024 });
    // The next request carrying a body is served normally.
    expect((await putJson(entryPath("after"), { value: "x".repeat(100 * 1024) })).status).toBe(200);
  });

  it("an endless body is refused with 413 and read only up to the drain bound, never buffered whole", async () => {
    const { stream, meter } = meteredBody(4 * DRAIN_LIMIT_BYTES);
    const res = await api("/api/v1/cache/seed", { method: "POST", body: stream, duplex: "half" } as RequestInit);
    expect(res.status).toBe(413);
    expect(((await res.json()) as any).error.code).toBe("too_large");
    expect(meter.pulled).toBeGreaterThan(MAX_BODY_BYTES);
    expect(meter.pulled).toBeLessThanOrEqual(DRAIN_LIMIT_BYTES + 64 * 1024);
    expect(meter.cancelled).toBe(true);
  });

  it("a declared Content-Length over 10 MiB is refused before anything is parsed", async () => {
    const { stream, meter } = meteredBody(1024);
    const res = await api("/api/v1/cache/seed", { method: "POST", body: stream, duplex: "half", headers: { "content-length": String(MAX_BODY_BYTES + 1) } } as RequestInit);
    expect(res.status).toBe(413);
    expect(meter.done).toBe(true);
  });
});

describe("an empty key", () => {
  it.each(["GET", "PUT", "DELETE"])("%s /entries/ is a 400 naming the empty key, as the README says", async (method) => {
    const res = await apiJson("/api/v1/cache/entries/", { method, ...(method === "PUT" ? { body: '{"value":1}' } : {}) });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: "bad_request", message: expect.stringMatching(/key must not be empty/) });
  });

  it("GET /entries (no slash) still lists", async () => {
    expect((await apiJson("/api/v1/cache/entries")).body.data).toEqual({ keys: [], cursor: null });
  });
});

describe("deeply nested values", () => {
  const nested = (depth: number) => "[".repeat(depth) + "1" + "]".repeat(depth);

  it("a PUT nested 5,000 levels deep is a 400 naming the depth limit, and changes nothing", async () => {
    const res = await api(entryPath("deep"), { method: "PUT", body: `{"value":${nested(5000)}}` });
    expect(res.status).toBe(400);
    const body = (await res.json()) as any;
    expect(body.error.code).toBe("bad_request");
    expect(body.error.message).toContain(`deeper than ${MAX_VALUE_DEPTH} levels`);
    expect((await apiJson(entryPath("deep"))).status).toBe(404);
  });

  it("nesting up to the limit is stored and read back", async () => {
    const res = await api(entryPath("ok"), { method: "PUT", body: `{"value":${nested(MAX_VALUE_DEPTH)}}` });
    expect(res.status).toBe(200);
    expect(JSON.stringify((await apiJson(entryPath("ok"))).body.data.value)).toBe(nested(MAX_VALUE_DEPTH));
  });

  it("a seed with one too-deep entry names it and applies nothing", async () => {
    const res = await api("/api/v1/cache/seed", { method: "POST", body: `{"entries":[{"key":"a","value":1},{"key":"deep","value":${nested(6000)}}]}` });
    expect(res.status).toBe(400);
    const body = (await res.json()) as any;
    expect(body.error.details.rejects).toEqual([{ index: 1, key: "deep", reason: expect.stringContaining("deeper than") }]);
    expect((await apiJson("/api/v1/cache/stats")).body.data.size).toBe(0);
    expect((await postJson("/api/v1/cache/seed", { entries: [{ key: "a", value: 1 }] })).status).toBe(200);
  });

  it("/metadata reports the depth limit", async () => {
    expect((await apiJson("/api/v1/cache/metadata")).body.data.limits.maxValueDepth).toBe(MAX_VALUE_DEPTH);
  });
});
