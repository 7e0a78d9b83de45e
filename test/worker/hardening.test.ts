import { abortAllDurableObjects, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { ENTRIES_KEY, canonicalJson, digestEntries } from "../../protocol/index.js";
import type { CacheDurableObject } from "../../worker/cache/cache-do.js";
import { ADMIN_KEY, BASE, api, apiJson, cacheStub, countKvWrites, entryPath, fakeClock, freshState, futureMidnight, postJson, putJson, utcDayOf } from "./helpers.js";
import { readKvJson } from "./kv-fixtures.js";

beforeEach(freshState);

/** Deterministic PRNG (mulberry32) so a failing fuzz case can be replayed from its seed. */
function rng(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { next, pick: <T>(xs: readonly T[]): T => xs[Math.floor(next() * xs.length)]!, int: (n: number) => Math.floor(next() * n) };
}

const digestNow = async () => (await apiJson("/api/v1/cache/snapshot")).body.data.digest as string;

describe("admin API fuzz: no 500, no stack trace, the envelope on every error, nothing changed by a rejection", () => {
  it("survives 600 generated requests", async () => {
    const r = rng(20261125);
    await postJson("/api/v1/cache/seed", { entries: [{ key: "seed:a", value: { px: 1 } }, { key: "seed:b", value: [1, 2, 3] }] });
    const keys = ["seed:a", "seed:b", "k", "ü/ñ", "a b", "..", ".", "%", "%E0%A4%A", "%2e%2e", "x".repeat(600), "é".repeat(300), "\u{1f600}", "", "a%2Fb", "<script>", "%00"];
    const paths = [
      () => `/api/v1/cache/entries/${r.pick(keys)}`,
      () => entryPath(r.pick(keys)),
      () => r.pick(["/api/v1/cache", "/api/v1/cache/", "/api/v1/cache/stats", "/api/v1/cache/metadata", "/api/v1/cache/entries", "/api/v1/cache/seed", "/api/v1/cache/flush", "/api/v1/cache/snapshot"]),
      () => `/api/v1/cache/entries?limit=${r.pick(["0", "-1", "abc", "1001", "5", "", "1e3"])}&prefix=${r.pick(["", "seed", "%zz"])}&cursor=${r.pick(["", "seed:a", "zzz"])}`,
      () => `/api/v1/cache?scope=${r.pick(["", "do", "kv", "all", "nope", "ALL"])}`,
      () => r.pick(["/", "/health", "/api", "/api/v1", "/api/v1/cachex", "/api/v1/cache/../../etc/passwd", "/api/v1/cache/entries/a/b/c", "/%ff"]),
    ];
    const bodies: Array<() => BodyInit | undefined> = [
      () => undefined,
      () => "",
      () => "{",
      () => '{"value":',
      () => "null",
      () => "[]",
      () => '"string"',
      () => JSON.stringify({ value: r.pick([1, "s", null, [1], { a: { b: [true] } }]), ttlSeconds: r.pick([undefined, 1, 60, -5, 0, "60", 1e12, null]) }),
      () => JSON.stringify({ ttlSeconds: 5 }),
      () => JSON.stringify({ entries: r.pick([[], "x", [{ key: "f", value: 1 }], [{ key: "", value: 1 }], [{ value: 1 }], [null]]), flush: r.pick([undefined, true, "yes"]) }),
      () => new Uint8Array(Array.from({ length: r.int(64) }, () => r.int(256))),
      () => JSON.stringify({ value: "v".repeat(1024 * 1024 + 10) }),
    ];
    const methods = ["GET", "PUT", "POST", "DELETE", "PATCH", "OPTIONS", "HEAD"];
    const authHeaders: Array<Record<string, string>> = [{ "x-api-key": ADMIN_KEY }, { "x-api-key": ADMIN_KEY }, { "x-api-key": ADMIN_KEY }, {}, { "x-api-key": "wrong" }, { authorization: `Bearer ${ADMIN_KEY}` }, { authorization: "Bearer " }];
    let before = await digestNow();
    let huge = 0;
    for (let i = 0; i < 600; i++) {
      let method = r.pick(methods);
      let path = r.pick(paths)();
      let body = method === "GET" || method === "HEAD" ? undefined : r.pick(bodies)();
      if (i % 200 === 17) {
        body = new Uint8Array(11 * 1024 * 1024); // an 11 MiB body, three times in the run
        path = "/api/v1/cache/seed";
        method = "POST";
        huge++;
      }
      let url: URL;
      try {
        url = new URL(`${BASE}${path}`);
      } catch {
        continue; // not a URL any client could send
      }
      const res = await api(url.pathname + url.search, { method, key: null, headers: r.pick(authHeaders), ...(body === undefined ? {} : { body }) });
      const text = await res.text();
      const where = `#${i} ${method} ${path.slice(0, 80)} → ${res.status}`;
      expect(res.status, where).not.toBe(500);
      expect(text, where).not.toMatch(/\n\s+at \S+/);
      if (res.status >= 400 && method !== "HEAD") {
        const doc = JSON.parse(text);
        expect(doc.success, where).toBe(false);
        expect(typeof doc.error.code, where).toBe("string");
        expect(typeof doc.error.message, where).toBe("string");
      }
      const mutating = res.status < 300 && (method === "PUT" || method === "POST" || method === "DELETE");
      const after = await digestNow();
      if (mutating) before = after;
      else expect(after, `${where} changed the cache`).toBe(before);
    }
    expect(huge).toBe(3);
  }, 120_000);
});

describe("auth edge cases", () => {
  it("accepts header names in any case and a lower-case bearer scheme", async () => {
    expect((await api("/api/v1/cache/stats", { key: null, headers: { "X-Api-KEY": ADMIN_KEY } })).status).toBe(200);
    expect((await api("/api/v1/cache/stats", { key: null, headers: { authorization: `bearer ${ADMIN_KEY}` } })).status).toBe(200);
  });

  it("prefers X-API-KEY when both are present (a wrong one is refused)", async () => {
    const res = await api("/api/v1/cache/stats", { key: null, headers: { "x-api-key": "wrong", authorization: `Bearer ${ADMIN_KEY}` } });
    expect(res.status).toBe(401);
  });
});

describe("concurrency", () => {
  it("200 concurrent PUTs and DELETEs on overlapping keys end in a state some serial order explains", async () => {
    const r = rng(7);
    const ops = Array.from({ length: 200 }, (_, i) => ({ i, key: `k${r.int(12)}`, del: r.next() < 0.3, value: { n: i } }));
    const results = await Promise.all(
      ops.map(async (op) => {
        const res = op.del ? await apiJson(entryPath(op.key), { method: "DELETE" }) : await putJson(entryPath(op.key), { value: op.value });
        return { op, status: res.status, generation: res.body.data?.generation as number | undefined };
      }),
    );
    const applied = results.filter((x) => x.status === 200).sort((a, b) => a.generation! - b.generation!);
    // Generations are unique and gapless: every applied op got its own step.
    expect(applied.map((x) => x.generation)).toEqual(applied.map((_, i) => i + 1));
    const model = new Map<string, unknown>();
    for (const { op } of applied) op.del ? model.delete(op.key) : model.set(op.key, op.value);
    // Every rejected DELETE was a 404 because, at its place in that order, the key was absent.
    for (const x of results.filter((x) => x.status !== 200)) expect(x.status).toBe(404);
    const snap = (await apiJson("/api/v1/cache/snapshot")).body.data;
    expect(Object.fromEntries(snap.entries.map(([k, e]: [string, { value: unknown }]) => [k, e.value]))).toEqual(Object.fromEntries([...model].sort()));
    const flushed = (await postJson("/api/v1/cache/flush", {})).body.data;
    const kv = await readKvJson(ENTRIES_KEY);
    expect(kv.digest).toBe(snap.digest);
    expect(flushed.digest).toBe(await digestEntries(kv.entries));
  });
});

describe("faults", () => {
  async function wrapKv(wrapper: (real: KVNamespace) => Partial<KVNamespace>) {
    await runInDurableObject(cacheStub(), (i: CacheDurableObject) => {
      const real = i.sync.kv;
      i.sync.kv = { ...bind(real), ...wrapper(real) } as KVNamespace;
    });
  }
  const bind = (kv: KVNamespace) => ({ get: kv.get.bind(kv), put: kv.put.bind(kv), delete: kv.delete.bind(kv), list: kv.list.bind(kv), getWithMetadata: kv.getWithMetadata.bind(kv) });

  it("KV put throwing on the Nth call: the flush fails, cache calls succeed, the alarm converges", async () => {
    let calls = 0;
    await apiJson("/api/v1/cache/stats");
    await wrapKv((real) => ({
      put: ((key: string, value: string, opts?: KVNamespacePutOptions) => {
        calls++;
        if (calls === 3) return Promise.reject(new Error("injected failure on put #3"));
        return real.put(key, value, opts);
      }) as KVNamespace["put"],
    }));
    const t0 = futureMidnight() + 10 * 3_600_000;
    const setClock = await fakeClock(t0);
    await putJson(entryPath("a"), { value: 1 });
    expect((await postJson("/api/v1/cache/flush", {})).body.data.written).toBe(true); // puts #1, #2
    await putJson(entryPath("b"), { value: 2 });
    await setClock(t0 + 5_000);
    const failed = (await postJson("/api/v1/cache/flush", {})).body.data; // put #3 fails
    expect(failed).toMatchObject({ written: false, error: expect.stringMatching(/injected failure on put #3/) });
    expect((await apiJson(entryPath("b"))).status).toBe(200);
    await setClock(t0 + 60_000);
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    const kv = await readKvJson(ENTRIES_KEY);
    expect(kv.digest).toBe(await (async () => (await apiJson("/api/v1/cache/snapshot")).body.data.digest)());
    expect((await apiJson("/api/v1/cache/stats")).body.data.kv).toMatchObject({ lastError: null, pendingSince: null });
  });

  it("a KV put that hangs times out instead of wedging the DO", async () => {
    await apiJson("/api/v1/cache/stats");
    await runInDurableObject(cacheStub(), (i: CacheDurableObject) => {
      i.sync.timeoutMs = 100;
    });
    await wrapKv(() => ({ put: (() => new Promise<void>(() => {})) as KVNamespace["put"] }));
    await putJson(entryPath("a"), { value: 1 });
    const flushed = (await postJson("/api/v1/cache/flush", {})).body.data;
    expect(flushed).toMatchObject({ written: false, error: expect.stringMatching(/timed out after 100 ms/) });
    expect((await putJson(entryPath("b"), { value: 2 })).status).toBe(200);
    expect((await apiJson(entryPath("a"))).status).toBe(200);
  });

  it("the DO evicted between a mutation and its flush: the new instance still flushes it", async () => {
    await putJson(entryPath("survivor"), { value: "v" });
    expect(await env.CACHE_DO_KV.get(ENTRIES_KEY)).toBeNull();
    await abortAllDurableObjects();
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true); // the alarm outlived the instance
    const kv = await readKvJson(ENTRIES_KEY);
    expect(kv.entries.map((e: [string]) => e[0])).toEqual(["survivor"]);
  });

  it("a budget exhausted just before midnight UTC resumes from the alarm just after it", async () => {
    const midnight = futureMidnight();
    const late = midnight - 60_000;
    const setClock = await fakeClock(late);
    await runInDurableObject(cacheStub(), (i: CacheDurableObject) => {
      i.store.writeMeta({ kvDay: utcDayOf(late), kvWritesToday: 40 });
      (i.sync as unknown as { writesToday: number; day: string }).writesToday = 40;
      (i.sync as unknown as { writesToday: number; day: string }).day = utcDayOf(late);
    });
    await putJson(entryPath("a"), { value: 1 });
    expect((await postJson("/api/v1/cache/flush", {})).body.data.written).toBe(false);
    const writes = await countKvWrites();
    // The wake-up scheduled before the refusal still fires; it writes nothing and moves the alarm to midnight.
    await setClock(late + 10_000);
    await runDurableObjectAlarm(cacheStub());
    expect(writes.puts).toEqual([]);
    const alarmAt = await runInDurableObject(cacheStub(), (_: CacheDurableObject, s) => s.storage.getAlarm());
    expect(alarmAt).toBe(midnight);
    await setClock(midnight + 1_000);
    expect(await runDurableObjectAlarm(cacheStub())).toBe(true);
    expect((await readKvJson(ENTRIES_KEY)).entries[0][0]).toBe("a");
    expect((await apiJson("/api/v1/cache/stats")).body.data.kv).toMatchObject({ writesToday: 2, lastError: null });
  });

  it("a seed of 10,000 entries with 3 invalid ones applies none and reports exactly those 3", async () => {
    const entries: Array<Record<string, unknown>> = Array.from({ length: 10_000 }, (_, i) => ({ key: `s${i}`, value: i }));
    entries[10] = { key: "", value: 1 };
    entries[5000] = { key: "no-value" };
    entries[9999] = { key: "bad-ttl", value: 1, ttlSeconds: -1 };
    const res = await api("/api/v1/cache/seed", { method: "POST", body: JSON.stringify({ entries }) });
    expect(res.status).toBe(400);
    const body = (await res.json()) as any;
    expect(body.error.details.rejects.map((x: { index: number }) => x.index)).toEqual([10, 5000, 9999]);
    expect((await apiJson("/api/v1/cache/stats")).body.data.size).toBe(0);
    const good = entries.filter((_, i) => ![10, 5000, 9999].includes(i));
    expect((await postJson("/api/v1/cache/seed", { entries: good })).body.data.applied).toBe(9997);
  }, 60_000);

  it("values survive the round trip exactly, whatever their JSON shape", async () => {
    const values = [0, -0.5, 1e21, 123456789012345, "", "ü\u2028\"\\</script>", null, false, [], {}, [[[]]], { "": 1, "\u{1f600}": [null] }];
    for (const [i, value] of values.entries()) await putJson(entryPath(`v${i}`), { value });
    for (const [i, value] of values.entries()) {
      const got = (await apiJson(entryPath(`v${i}`))).body.data.value;
      expect(canonicalJson(got)).toBe(canonicalJson(value));
    }
  });
});
