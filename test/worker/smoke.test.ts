import { beforeEach, describe, expect, it } from "vitest";
import { api, apiJson, entryPath, freshState, putJson } from "./helpers.js";

beforeEach(freshState);

describe("smoke", () => {
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
