import { reset, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { CacheDurableObject } from "../../worker/cache/cache-do.js";
import { clock } from "../../worker/clock.js";
import { digestRows } from "../../protocol/index.js";
import { forgetCachedSnapshot } from "../../protocol/snapshot-cache.js";
import worker from "../../worker/index.js";

export const ADMIN_KEY = "test-admin-key-0123456789";
export const BASE = "https://tftcache.test";

/** The DO instance the admin API talks to. */
export const cacheStub = () => env.CACHE_DO.get(env.CACHE_DO.idFromName("cache"));

const DAY_MS = 86_400_000;

/**
 * A fake "now" for the DO, always derived from the real clock and always in its future: the UTC midnight after
 * next. workerd fires alarms against the real clock, so an alarm the DO sets at a fake time that the real clock
 * has passed fires at once, in the background, and races the test. At least 24 h ahead, no alarm set in fake
 * time can fire during a test; the test runs them with runDurableObjectAlarm. "Just before midnight" is
 * `futureMidnight() - 60_000`, still a day ahead.
 */
export function futureMidnight(realNow = Date.now()): number {
  return Math.floor(realNow / DAY_MS) * DAY_MS + 2 * DAY_MS;
}

export const utcDayOf = (ms: number) => new Date(ms).toISOString().slice(0, 10);

/**
 * Noon of the day that starts at `futureMidnight()`: the default fake time. Mid-day, scheduled flushes have half a
 * day's share of the budget to spend (worker/cache/pacing.ts), as a cache that has been quiet all morning would.
 */
export const futureNoon = (realNow = Date.now()) => futureMidnight(realNow) + DAY_MS / 2;

/**
 * Every test starts from empty DO storage, an empty KV namespace, no live DO instances, and the DO's clock
 * stopped at `futureNoon()` (see futureMidnight): time moves only when the test moves it.
 */
export async function freshState(): Promise<void> {
  // reset() also restarts live instances. Aborting first would hide them from it and leak their storage.
  await reset();
  // KV is emptied, so this isolate's copy of the KV snapshot (protocol/snapshot-cache) goes too.
  forgetCachedSnapshot();
  const start = futureNoon();
  clock.now = () => start;
}

export async function api(path: string, init: RequestInit & { key?: string | null } = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  const key = init.key === undefined ? ADMIN_KEY : init.key;
  if (key !== null) headers.set("x-api-key", key);
  // Failed authentication is throttled per client address; unless a test is about that, each request comes
  // from its own address so that tests refusing keys on purpose never throttle one another.
  if (!headers.has("cf-connecting-ip")) headers.set("cf-connecting-ip", randomAddress());
  // The exported handler is called directly rather than through exports.default.fetch: the harness's
  // self-binding slows down superlinearly with every request (cloudflare/workers-sdk#15446). smoke.test.ts
  // still goes through the binding to prove the export is wired.
  return worker.fetch(new Request(`${BASE}${path}`, { ...init, headers }) as Request<unknown, IncomingRequestCfProperties>, env);
}

export async function apiJson<T = any>(path: string, init: RequestInit & { key?: string | null } = {}): Promise<{ status: number; body: T }> {
  const res = await api(path, init);
  return { status: res.status, body: (await res.json()) as T };
}

export const randomAddress = () => `2001:db8::${[...crypto.getRandomValues(new Uint16Array(3))].map((n) => n.toString(16)).join(":")}`;

export const putJson = (path: string, body: unknown) =>
  apiJson(path, { method: "PUT", body: JSON.stringify(body), headers: { "content-type": "application/json" } });
export const postJson = (path: string, body: unknown) =>
  apiJson(path, { method: "POST", body: JSON.stringify(body), headers: { "content-type": "application/json" } });

export const entryPath = (key: string) => `/api/v1/cache/entries/${encodeURIComponent(key)}`;

/** Counts KV writes made by the DO by wrapping its namespace: an independent check on its own counters. */
export async function countKvWrites(stub = cacheStub()): Promise<{ puts: string[]; deletes: string[] }> {
  const log = { puts: [] as string[], deletes: [] as string[] };
  await runInDurableObject(stub, (instance: CacheDurableObject) => {
    const real = instance.sync.kv;
    instance.sync.kv = {
      get: real.get.bind(real),
      list: real.list.bind(real),
      getWithMetadata: real.getWithMetadata.bind(real),
      put: (key: string, ...rest: unknown[]) => {
        log.puts.push(key);
        return (real.put as any)(key, ...rest);
      },
      delete: (key: string) => {
        log.deletes.push(key);
        return real.delete(key);
      },
    } as KVNamespace;
  });
  return log;
}

/**
 * Sets the DO's clock (worker/clock.ts, so it holds across restarts) to `start`, by default `futureNoon()`;
 * returns a setter to move it. Never pass a literal date: derive times from futureMidnight().
 */
export async function fakeClock(start = futureNoon()): Promise<(ms: number) => Promise<void>> {
  let now = start;
  clock.now = () => now;
  return async (ms: number) => {
    now = ms;
  };
}

/** The DO's current (fake) time. */
export const doNow = () => clock.now();

/** Stages a restore of one live row ("r") under `stage`; returns the digest its commit must name. */
export async function stageOneRowRestore(stage = "s1"): Promise<string> {
  const rows: Array<[string, { value: string; expiresAt: number; cachedAt: number; lastAccessed: number }]> = [["r", { value: "3", expiresAt: futureNoon() + 86_400_000, cachedAt: 1, lastAccessed: 1 }]];
  await cacheStub().stageRestore(stage, rows);
  return digestRows(rows.map(([k, e]) => [k, e.value, e.expiresAt] as const));
}

/**
 * Starts `during` (once) from inside the DO's first KV `method` call, so a test can make something happen while a
 * flush or a clear is under way; with `wait`, the call goes on only once `during` has settled (a write-through PUT
 * must not be waited for: its own flush queues behind the one in progress). `restore()` puts the binding back.
 */
export function duringFirstKvCall(instance: CacheDurableObject, method: "put" | "delete", during: () => Promise<unknown>, opts: { wait: boolean } = { wait: true }): { restore: () => void; done: () => Promise<unknown> | undefined } {
  const sync = instance.sync as unknown as { kv: KVNamespace };
  const original = sync.kv;
  let started: Promise<unknown> | undefined;
  sync.kv = new Proxy(original, {
    get: (target, name) =>
      name === method
        ? async (...args: unknown[]) => {
            started ??= during();
            if (opts.wait) await started;
            return (target[method] as (...a: unknown[]) => Promise<unknown>)(...args);
          }
        : Reflect.get(target, name, target),
  });
  return { restore: () => (sync.kv = original), done: () => started };
}
