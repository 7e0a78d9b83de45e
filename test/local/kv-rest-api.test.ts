import { describe, expect, it } from "vitest";
import { createKvRestHandler, type KvLike } from "../../local/kv-rest-api.js";
import worker from "../../local/kv-rest-worker.js";

/** An in-memory namespace with the binding's shape. */
function memoryKv(): KvLike {
  const store = new Map<string, { value: string; metadata?: unknown }>();
  return {
    get: (async (key: string, type: "text" | "stream") => {
      const value = store.get(key)?.value ?? null;
      return value === null || type === "text" ? value : new Blob([value]).stream();
    }) as KvLike["get"],
    getWithMetadata: async (key) => ({ value: store.get(key)?.value ?? null, metadata: store.get(key)?.metadata ?? null }),
    put: async (key, value, options) => void store.set(key, { value, ...(options?.metadata === undefined ? {} : { metadata: options.metadata }) }),
    delete: async (key) => void store.delete(key),
    list: async () => ({ keys: [...store.keys()].map((name) => ({ name })), list_complete: true }),
  };
}

const base = "http://kv.test/client/v4/accounts/acct/storage/kv/namespaces/ns";
const handler = createKvRestHandler({ kv: memoryKv(), accountId: "acct", namespaceId: "ns", token: "tok" });
const call = (path: string, init: RequestInit = {}) => handler(new Request(`${base}${path}`, { ...init, headers: { authorization: "Bearer tok", ...(init.headers as Record<string, string>) } }));

describe("the local KV REST stand-in answers bad requests with 4xx envelopes, as Cloudflare does", () => {
  it("refuses a key over 512 bytes", async () => {
    const res = await call(`/values/${"k".repeat(600)}`, { method: "PUT", body: "v" });
    expect(res.status).toBe(414);
    expect(await res.json()).toMatchObject({ success: false, errors: [{ message: "key is longer than 512 bytes" }] });
  });

  it("refuses a malformed multipart body instead of failing with 500", async () => {
    const res = await call("/values/k", { method: "PUT", body: "--nope\r\ngarbage", headers: { "content-type": "multipart/form-data; boundary=zzz" } });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { errors: Array<{ message: string }> }).errors[0]!.message).toMatch(/malformed multipart body/);
  });

  it("stores a value and its metadata from a well-formed multipart PUT", async () => {
    const form = new FormData();
    form.set("value", "hello");
    form.set("metadata", JSON.stringify({ generation: 3 }));
    expect((await call("/values/k", { method: "PUT", body: form })).status).toBe(200);
    expect(await (await call("/values/k")).text()).toBe("hello");
    expect(await (await call("/metadata/k")).json()).toMatchObject({ result: { generation: 3 } });
  });
});

describe("the stand-in as the local stack's Worker (local/kv-rest-worker.ts)", () => {
  const env = (kv: KvLike) => ({ CACHE_DO_KV: kv, KV_REST_ACCOUNT_ID: "acct", KV_REST_NAMESPACE_ID: "ns", KV_REST_TOKEN: "tok" });
  const get = (path: string) => new Request(`${base}${path}`, { headers: { authorization: "Bearer tok" } });

  it("serves the namespace it is bound to, with the account, namespace and token it is given", async () => {
    const kv = memoryKv();
    await kv.put("k", "hello");
    expect(await (await worker.fetch(get("/values/k"), env(kv))).text()).toBe("hello");
    const wrongToken = await worker.fetch(new Request(`${base}/values/k`, { headers: { authorization: "Bearer nope" } }), env(kv));
    expect(wrongToken.status).toBe(403);
  });

  it("answers a failing KV store with a 500 envelope, as Cloudflare's API does, not a dropped connection", async () => {
    const broken = { ...memoryKv(), get: (async () => { throw new Error("storage is gone"); }) as KvLike["get"] };
    const res = await worker.fetch(get("/values/k"), env(broken));
    expect(res.status).toBe(500);
    expect(await res.json()).toMatchObject({ success: false, errors: [{ code: 10001, message: "local KV API failure: storage is gone" }] });
  });
});
