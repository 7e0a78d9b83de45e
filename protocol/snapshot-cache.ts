/**
 * The KV fallback's parsed snapshot, kept per isolate and per source (KV binding or `kv` object).
 *
 * Reading `do_cache_entries` costs a download, a JSON parse and a digest over every entry: hundreds of ms of CPU
 * at 10,000 × 1 KiB, far past a Worker's 10 ms CPU budget if paid per request. So the verdict (verified, torn or
 * corrupt) is kept with a Map index and reused while KV says the key is unchanged:
 *
 * - With `getWithMetadata` (every real KV binding), each read asks KV for the key's metadata (generation, digest,
 *   writtenAt: what every flush writes) as a stream and cancels the body when it matches what is held. That is
 *   one KV read per fallback request, as before this cache, but no download, parse or digest. The metadata comes
 *   with the very value KV would serve (the same cached object), so it cannot run ahead of the value the way a
 *   separate `list` can; and reads cost the free plan's 100,000-a-day quota, not `list`'s 1,000.
 * - A key without usable metadata (written by hand, or before 0.2) is never reused: it is read afresh each time.
 * - With only `get` (a minimal binding), KV cannot say whether the key changed: the verdict is reused for at most
 *   SNAPSHOT_TRUST_MS, then read again.
 *
 * Torn and corrupt verdicts are kept the same way, so a damaged snapshot is refused without re-hashing it.
 *
 * The copy is kept per source: per `kv` object (a WeakMap keyed by it), never shared between two namespaces, so a
 * read through namespace B can never be answered with namespace A's data. Env bindings are stable objects for the
 * life of an isolate, so a binding's copy is reused across requests; a wrapper object created per request gets a
 * fresh (empty) keeping each time: create such an object once per isolate (module scope) for it to be reused. One
 * snapshot per source: a new one replaces the old, which is dropped before the download starts. Concurrent reads of
 * one source that need the same download share it (single flight).
 */
import { ENTRIES_KEY, type EntriesSnapshot, type SnapshotEntry } from "./snapshot.js";
import { verifySnapshotText, type SnapshotRead } from "./snapshot-read.js";

/** How long a get-only source's verdict is reused before the snapshot is read again. */
export const SNAPSHOT_TRUST_MS = 60_000;

/** What the cache reads KV through: a KV binding, or anything shaped like its `get` (and, ideally, `getWithMetadata`). */
export interface SnapshotKv {
  get(key: string, type: "text"): Promise<string | null>;
  getWithMetadata?(key: string, type: "stream"): Promise<{ value: ReadableStream | null; metadata: unknown }>;
}

/** A verified snapshot with an O(1) lookup, or why there is none. */
export type CachedSnapshotRead =
  | (SnapshotRead & { ok: false })
  | {
      ok: true;
      snapshot: EntriesSnapshot;
      /** The key's live entry (not expired at `now`), in O(1). */
      find(key: string, now: number): SnapshotEntry | undefined;
      /** The key's entry, expired or not (stale-if-error looks past expiry). */
      entry(key: string): SnapshotEntry | undefined;
    };

interface Slot {
  read: CachedSnapshotRead;
  /** The key's metadata when it was downloaded (generation, digest, writtenAt), or null when KV gave none. */
  fingerprint: string | null;
  loadedAt: number;
}

/** What one source (one `kv` object) keeps: its verified copy and its download in flight. */
interface Kept {
  slot?: Slot | undefined;
  inflight?: { key: string | null; done: Promise<Slot> } | undefined;
}

/** Per source, so that two namespaces (or two get-only objects) read in one isolate never answer for each other. */
let kept = new WeakMap<SnapshotKv, Kept>();
const keptFor = (kv: SnapshotKv): Kept => {
  let k = kept.get(kv);
  if (!k) kept.set(kv, (k = {}));
  return k;
};
/** Downloads (and verifications) this isolate has made: tests and the benchmark read it. */
let downloads = 0;

/** The generation, digest and time KV's key metadata names, as one comparable string; null if it names none. */
function fingerprintOf(metadata: unknown): string | null {
  if (typeof metadata !== "object" || metadata === null) return null;
  const m = metadata as { generation?: unknown; digest?: unknown; writtenAt?: unknown };
  if (typeof m.generation !== "number" || typeof m.digest !== "string") return null;
  return `${m.generation}|${m.digest}|${String(m.writtenAt)}`;
}

function indexed(read: SnapshotRead): CachedSnapshotRead {
  if (!read.ok) return read;
  const index = new Map<string, SnapshotEntry>(read.snapshot.entries);
  return {
    ok: true,
    snapshot: read.snapshot,
    find: (key, now) => {
      const entry = index.get(key);
      return entry && entry.expiresAt > now ? entry : undefined;
    },
    entry: (key) => index.get(key),
  };
}

/**
 * Downloads and verifies once for everyone who needs the same version (`flightKey`: the fingerprint, or "timed"
 * for a get-only source; null shares nothing, as a key without metadata cannot be recognised).
 */
function download(k: Kept, flightKey: string | null, fingerprint: string | null, text: () => Promise<string | null>, now: number): Promise<Slot> {
  if (flightKey !== null && k.inflight && k.inflight.key === flightKey) return k.inflight.done;
  k.slot = undefined; // one snapshot per source: the old one goes before the new one is read
  const done = (async (): Promise<Slot> => {
    let body: string | null;
    try {
      body = await text();
    } catch (err) {
      return { read: { ok: false, status: "unreadable", reason: `KV get failed: ${(err as Error).message}` }, fingerprint: null, loadedAt: now };
    }
    if (body === null) return { read: { ok: false, status: "absent", reason: `${ENTRIES_KEY} is absent` }, fingerprint: null, loadedAt: now };
    downloads++;
    const next: Slot = { read: indexed(await verifySnapshotText(body)), fingerprint, loadedAt: now };
    // Kept only when it can be recognised again (a fingerprint, or a get-only source's time bound).
    k.slot = next;
    return next;
  })();
  const flight = { key: flightKey, done };
  k.inflight = flight;
  void done.finally(() => {
    if (k.inflight === flight) k.inflight = undefined;
  });
  return done;
}

/**
 * The KV snapshot for a fallback read, verified, from this isolate's copy when KV says it is unchanged. `now` is
 * the caller's clock (the Worker's is movable in tests); a clock that went backwards counts as expired.
 */
export async function readCachedSnapshot(kv: SnapshotKv, now: number): Promise<CachedSnapshotRead> {
  const k = keptFor(kv);
  if (typeof kv.getWithMetadata !== "function") {
    const held = k.slot;
    if (held && now >= held.loadedAt && now - held.loadedAt < SNAPSHOT_TRUST_MS) return held.read;
    return (await download(k, "timed", null, () => kv.get(ENTRIES_KEY, "text"), now)).read;
  }
  let probe: { value: ReadableStream | null; metadata: unknown };
  try {
    probe = await kv.getWithMetadata(ENTRIES_KEY, "stream");
  } catch (err) {
    return { ok: false, status: "unreadable", reason: `KV get failed: ${(err as Error).message}` };
  }
  const stream = probe.value;
  if (stream === null) {
    k.slot = undefined;
    return { ok: false, status: "absent", reason: `${ENTRIES_KEY} is absent` };
  }
  const fingerprint = fingerprintOf(probe.metadata);
  const held = k.slot;
  if (fingerprint !== null && held && held.fingerprint === fingerprint) {
    stream.cancel().catch(() => {}); // KV says unchanged: the body is not needed
    return held.read;
  }
  const running = k.inflight;
  if (fingerprint !== null && running && running.key === fingerprint) {
    stream.cancel().catch(() => {}); // another request is downloading this very version: share it
    return (await running.done).read;
  }
  return (await download(k, fingerprint, fingerprint, () => new Response(stream).text(), now)).read;
}

/** Drops this isolate's copies, of every source (tests, and callers that know KV changed). */
export function forgetCachedSnapshot(): void {
  kept = new WeakMap();
}

/** How many times this isolate downloaded and verified the snapshot (tests, benchmark). */
export const snapshotDownloads = (): number => downloads;
