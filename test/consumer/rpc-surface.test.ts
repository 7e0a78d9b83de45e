import { env } from "cloudflare:workers";
import { beforeAll, describe, expect, it } from "vitest";
import { ENTRIES_KEY, STATS_KEY } from "../../protocol/index.js";
import { CacheService } from "../../worker/service.js";

/**
 * Issue 11 item 2: a Worker holding only the CacheService binding must reach exactly the documented API and
 * nothing else. `tftcache-attacker` (test/consumer/attacker.ts) is such a Worker; this test drives it and checks
 * tftcache's DO state, both KV keys and its KV write counter before and after.
 */
const bindings = env as unknown as { ATTACKER: Fetcher; CACHE_ADMIN: Fetcher; CONSUMER: Fetcher; CACHE_DO_KV: KVNamespace; ADMIN_API_KEY: string };

const admin = async (path: string, init: RequestInit = {}) => {
  const res = await bindings.CACHE_ADMIN.fetch(`http://tftcache/api/v1/cache${path}`, { ...init, headers: { "x-api-key": bindings.ADMIN_API_KEY } });
  return res.json() as Promise<any>;
};

type Attempt = { call?: string; get?: string; args?: unknown[]; then?: { call: string; args?: unknown[] } };
type Outcome = { label: string; threw: boolean; value?: unknown; error?: string };

const attack = async (attempts: Attempt[]): Promise<Outcome[]> =>
  (await bindings.ATTACKER.fetch("http://attacker/", { method: "POST", body: JSON.stringify(attempts) })).json() as Promise<Outcome[]>;

/** The DO's snapshot is built at each request; writtenAt is that moment, not part of the cache's state. */
const withoutWrittenAt = ({ writtenAt: _writtenAt, ...rest }: { writtenAt: number; [field: string]: any }) => rest;

/** What the attack must not change: the DO's entries and generation, both KV keys, KV writes spent. */
async function cacheState() {
  const stats = (await admin("/stats")).data;
  return {
    doSnapshot: withoutWrittenAt((await admin("/snapshot")).data),
    generation: stats.generation,
    size: stats.size,
    kvWritesToday: stats.kv.writesToday,
    kvFlushedGeneration: stats.kv.flushedGeneration,
    kvEntries: await bindings.CACHE_DO_KV.get(ENTRIES_KEY, "text"),
    kvStats: await bindings.CACHE_DO_KV.get(STATS_KEY, "text"),
  };
}

const NOT_API = [
  // The helpers CacheService had as TypeScript-private members (reachable at runtime before the fix).
  "readThrough", "stub", "fromKv", "fromKvOne", "config", "log",
  // What WorkerEntrypoint and Object give every instance.
  "env", "ctx", "constructor", "fetch", "connect", "toString", "toLocaleString", "valueOf", "hasOwnProperty",
  "isPrototypeOf", "propertyIsEnumerable", "__proto__", "__defineGetter__", "__lookupGetter__", "dup",
  // The DO's own methods: reachable only through tftcache's DO binding, never through CacheService.
  "clear", "seed", "flush", "putEntry", "deleteEntry", "getEntry", "listKeys", "stats", "metadata", "snapshot", "purgePrefix",
  "loadOnce", "load", "alarm", "scheduled", "queue", "tail", "test", "webSocketMessage",
];

describe("the CacheService RPC surface is exactly the documented client API", () => {
  beforeAll(async () => {
    // Known state: long-lived entries only (no sweep can land mid-test), flushed so no KV write is owed.
    await admin("?scope=all", { method: "DELETE" });
    const put = await admin("/seed", {
      method: "POST",
      body: JSON.stringify({ entries: [{ key: "quote:AAPL", value: { bid: 190 }, ttlSeconds: 3600 }, { key: "pos:desk-1", value: [1, 2], ttlSeconds: 3600 }] }),
    });
    expect(put.success).toBe(true);
    expect((await admin("/flush", { method: "POST" })).data.written).toBe(true);
  });

  it("the class's prototype (what RPC exposes) holds only the documented methods", () => {
    // deletePrefix (issue 15): entries only, like delete; it cannot clear, seed, flush or spend the operator's reserve.
    expect(Object.getOwnPropertyNames(CacheService.prototype).sort()).toEqual(["constructor", "delete", "deletePrefix", "get", "getMany", "getOrSet", "refresh", "set"]);
  });

  it("a Worker holding only the binding cannot clear, seed, flush or read internals through any other name", async () => {
    const before = await cacheState();
    expect(before.size).toBe(2);
    expect(before.doSnapshot.entries.map(([key]: [string]) => key)).toEqual(["pos:desk-1", "quote:AAPL"]);
    expect(before.kvEntries).not.toBeNull();
    expect(before.kvStats).not.toBeNull();

    const attempts: Attempt[] = [
      { call: "readThrough", args: ["clear", "all", "$loader", {}] },
      { call: "readThrough", args: ["clear", "all"] },
      { call: "readThrough", args: ["seed", [{ key: "pwned", value: "1" }], "$loader", { flush: true }] },
      { call: "readThrough", args: ["flush"] },
      { call: "readThrough", args: ["putEntry", { key: "quote:AAPL", value: '"pwned"' }] },
      { call: "readThrough", args: ["deleteEntry", "quote:AAPL"] },
      { call: "readThrough", args: ["getOrSet", "pwned:rt", "$loader", {}] },
      { call: "stub", args: [] },
      { call: "stub", args: [], then: { call: "clear", args: ["all"] } },
      { call: "stub", args: [], then: { call: "seed", args: [[{ key: "pwned", value: "1" }], { flush: true }] } },
      { call: "stub", args: [], then: { call: "flush", args: [] } },
      { call: "stub", args: [], then: { call: "deleteEntry", args: ["quote:AAPL"] } },
      { call: "fromKv", args: [["quote:AAPL"], "probe"] },
      { call: "fromKvOne", args: ["quote:AAPL", "probe"] },
      { call: "fetch", args: ["http://tftcache/api/v1/cache?scope=all", { method: "DELETE" }] },
      ...NOT_API.map((name) => ({ get: name })),
      ...NOT_API.map((name) => ({ call: name, args: ["all"] })),
      ...NOT_API.map((name) => ({ call: name, args: [[{ key: "pwned", value: "1" }], { flush: true }] })),
      { get: "env", args: [] },
      { call: "env", args: [], then: { call: "CACHE_DO", args: [] } },
      { call: "ctx", args: [], then: { call: "waitUntil", args: [] } },
    ];
    const outcomes = await attack(attempts);
    expect(outcomes).toHaveLength(attempts.length);
    // The damage that was done before the fix: DO emptied or seeded, KV keys deleted or rewritten, writes spent.
    expect(await cacheState()).toEqual(before);
    // Nothing but an error or nothing at all comes back: no stub, no config, no env, no entries. Object's own
    // members (toString, __proto__, …) answer locally from the binding object and never reach tftcache, and so does
    // reading the binding's own fetch and connect (calling them does reach tftcache, and throws: no such handler).
    const name = (o: Outcome) => o.label.replace(/^get /, "").replace(/\(.*$/, "");
    const local = (o: Outcome) => Reflect.has(Object.prototype, name(o)) || (o.label.startsWith("get ") && ["fetch", "connect"].includes(name(o)));
    const leaks = outcomes.filter((o) => !o.threw && o.value !== "undefined" && !local(o));
    expect(leaks).toEqual([]);
    // The names that were the holes: calling them now fails outright.
    for (const hole of ["readThrough", "stub", "fromKv", "fromKvOne"]) {
      expect(outcomes.filter((o) => name(o) === hole && !o.label.startsWith("get ")).every((o) => o.threw)).toBe(true);
    }

    // The documented API still works for the same Worker (the attacker is an ordinary client).
    const [read] = await attack([{ call: "get", args: ["quote:AAPL"] }]);
    expect(read).toMatchObject({ threw: false, value: { found: true, value: { bid: 190 }, source: "do" } });
  });
});
