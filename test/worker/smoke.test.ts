import { beforeEach, describe, expect, it } from "vitest";
import { exports } from "cloudflare:workers";
import { ADMIN_KEY, BASE, api, apiJson, entryPath, freshState, putJson } from "./helpers.js";

beforeEach(freshState);

describe("smoke", () => {
  it("the default export serves requests through the runtime's service binding", async () => {
    const res = await exports.default.fetch(new Request(`${BASE}/api/v1/cache/stats`, { headers: { "x-api-key": ADMIN_KEY } }));
    expect(res.status).toBe(200);
    expect(((await res.json()) as { data: { size: number } }).data.size).toBe(0);
  });

  it("health answers without auth", async () => {
    const { status, body } = await apiJson("/health", { key: null });
    expect(status).toBe(200);
    expect(body).toEqual({ success: true, data: { status: "ok", version: expect.any(String) } });
  });

  it("put then get round-trips a value", async () => {
    const put = await putJson(entryPath("a"), { value: { b: 2, a: 1 } });
    expect(put.status).toBe(200);
    const got = await apiJson(entryPath("a"));
    expect(got.status).toBe(200);
    expect(got.body.data.value).toEqual({ a: 1, b: 2 });
    const res = await api(entryPath("missing"));
    expect(res.status).toBe(404);
  });
});
