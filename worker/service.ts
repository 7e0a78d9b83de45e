import { WorkerEntrypoint } from "cloudflare:workers";
import { canonicalJson, findLive, keyProblem, type GetOrSetOptions, type ServiceGetOrSet, type ServiceRead, type ServiceWrite } from "../protocol/index.js";
import type { StoredEntryView } from "./cache/cache-do.js";
import { readConfig } from "./config.js";
import { cacheStub, type Env } from "./env.js";
import { readKvSnapshot } from "./kv-snapshot-reader.js";
import { createLogger } from "./log.js";

const toRead = (view: StoredEntryView): ServiceRead => ({
  found: true,
  value: JSON.parse(view.valueJson),
  expiresAt: view.expiresAt,
  source: "do",
  ...(view.stale ? { stale: true } : {}),
});

/**
 * The cache for application Workers: `[[services]] binding = "TFTCACHE", service = "tftcache",
 * entrypoint = "CacheService"`. No HTTP, no admin key: the service binding is the capability. Cache failures
 * come back as values (found: false, ok: false), so an application never has to catch them.
 */
export class CacheService extends WorkerEntrypoint<Env> {
  private readonly config = readConfig(this.env).config;
  private readonly log = createLogger(this.config.logLevel);

  private stub() {
    return cacheStub(this.env);
  }

  /** Reads the KV snapshot once and answers every key from it. */
  private async fromKv(keys: string[], reason: string): Promise<Record<string, ServiceRead>> {
    for (const key of keys) this.log("warn", "DUAL_CACHE_DO", "fallback", { key, reason });
    const read = await readKvSnapshot(this.env.CACHE_DO_KV);
    const now = Date.now();
    const out: Record<string, ServiceRead> = {};
    for (const key of keys) {
      const entry = read.ok ? findLive(read.snapshot, key, now) : undefined;
      out[key] = entry
        ? { found: true, value: entry.value, expiresAt: entry.expiresAt, source: "kv", fallbackReason: reason }
        : { found: false, source: read.ok ? "kv" : "none", fallbackReason: read.ok ? reason : `${reason}; ${read.reason}` };
    }
    return out;
  }

  private async fromKvOne(key: string, reason: string): Promise<ServiceRead> {
    return (await this.fromKv([key], reason))[key]!;
  }

  async get(key: string): Promise<ServiceRead> {
    const invalid = keyProblem(key);
    if (invalid) return { found: false, source: "none", fallbackReason: invalid };
    if (!this.config.featureFlagDoCache) return this.fromKvOne(key, "FEATURE_FLAG_DO_CACHE is false");
    try {
      const r = await this.stub().getEntry(key);
      return r.ok ? toRead(r.data) : { found: false, source: "do" };
    } catch (err) {
      return this.fromKvOne(key, `DO unreachable: ${(err as Error).message}`);
    }
  }

  async getMany(keys: string[]): Promise<Record<string, ServiceRead>> {
    if (!this.config.featureFlagDoCache) return this.fromKv(keys, "FEATURE_FLAG_DO_CACHE is false");
    try {
      const views = await this.stub().getMany(keys.filter((k) => !keyProblem(k)));
      const out: Record<string, ServiceRead> = {};
      for (const key of keys) out[key] = views[key] ? toRead(views[key]!) : { found: false, source: "do" };
      return out;
    } catch (err) {
      return this.fromKv(keys, `DO unreachable: ${(err as Error).message}`);
    }
  }

  async set(key: string, value: unknown, opts: { ttlSeconds?: number } = {}): Promise<ServiceWrite> {
    if (!this.config.featureFlagDoCache) return { ok: false, error: "FEATURE_FLAG_DO_CACHE is false: the cache is read-only" };
    let text: string;
    try {
      text = canonicalJson(value);
    } catch {
      return { ok: false, error: "value is not representable as JSON" };
    }
    // Key, TTL and size are checked once, by the DO (entryProblem), and its reason comes back as `error`.
    try {
      const r = await this.stub().putEntry({ key, value: text, ...(opts.ttlSeconds === undefined ? {} : { ttlSeconds: opts.ttlSeconds }) });
      return r.ok ? { ok: true } : { ok: false, error: "message" in r ? String(r.message) : "rejected" };
    } catch (err) {
      return { ok: false, error: `DO unreachable: ${(err as Error).message}` };
    }
  }

  async delete(key: string): Promise<ServiceWrite & { deleted: boolean }> {
    if (!this.config.featureFlagDoCache) return { ok: false, deleted: false, error: "FEATURE_FLAG_DO_CACHE is false: the cache is read-only" };
    try {
      const r = await this.stub().deleteEntry(key);
      return { ok: true, deleted: r.ok };
    } catch (err) {
      return { ok: false, deleted: false, error: `DO unreachable: ${(err as Error).message}` };
    }
  }

  /**
   * Read-through with single flight inside the DO. `loader` is the caller's function, passed over RPC; the DO
   * calls it back at most once per key at a time. With the DO bypassed or unreachable, a KV hit is served and
   * otherwise the loader runs uncached.
   */
  async getOrSet(key: string, loader: () => unknown, opts: GetOrSetOptions = {}): Promise<ServiceGetOrSet> {
    return this.readThrough("getOrSet", key, loader, opts);
  }

  /** The background half of stale-while-revalidate: the caller runs it in its own ctx.waitUntil. */
  async refresh(key: string, loader: () => unknown, opts: GetOrSetOptions = {}): Promise<ServiceGetOrSet> {
    return this.readThrough("refresh", key, loader, opts);
  }

  private async readThrough(op: "getOrSet" | "refresh", key: string, loader: () => unknown, opts: GetOrSetOptions): Promise<ServiceGetOrSet> {
    let fallbackReason = "FEATURE_FLAG_DO_CACHE is false";
    if (this.config.featureFlagDoCache) {
      try {
        const r = await this.stub()[op](key, loader, opts);
        if (r.ok) return { ok: true, value: JSON.parse(r.data.valueJson), state: r.data.state, source: "do" };
        return { ok: false, source: "do", error: "message" in r ? String(r.message) : "getOrSet failed" };
      } catch (err) {
        fallbackReason = `DO unreachable: ${(err as Error).message}`;
      }
    }
    const kv = await this.fromKvOne(key, fallbackReason);
    if (kv.found) return { ok: true, value: kv.value, state: "hit", source: "kv" };
    try {
      return { ok: true, value: await loader(), state: "uncached", source: "loader" };
    } catch (err) {
      return { ok: false, source: "loader", error: `loader for ${JSON.stringify(key)} failed: ${(err as Error)?.message ?? String(err)}` };
    }
  }
}
