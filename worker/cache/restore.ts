import { digestRows, snapshotEntryBytes, type RestoreResult, type RestoreStaged } from "../../protocol/index.js";
import { fail, ok, type Result } from "../result.js";
import type { MemoryEntry } from "./memory.js";
import type { StagedEntry } from "./storage.js";
import type { MutationHost } from "./mutation-host.js";

/** Restore stages not committed within this long are discarded (by the alarm). */
export const STAGE_TTL_MS = 3_600_000;
/** What one restore may stage: a full 25 MiB snapshot with room to spare. */
export const MAX_STAGE_BYTES = 64 * 1024 * 1024;

/** What a restore needs from the cache (CacheDurableObject passes its own parts). */
export interface RestoreHost extends MutationHost {
  maxBytes: number;
  now(): number;
  ensureAlarm(): Promise<void>;
  /** A stage was opened at `since`: the alarm discards it STAGE_TTL_MS later unless it is committed. */
  stageOpened(since: number): void;
  /** The contents are about to be replaced: forget read times, loads in flight and the expiry schedule. */
  forgetContents(): void;
  /** An entry of the new contents: for the expiry schedule. */
  scheduleExpiry(expiresAt: number): void;
  /** The digest of the cache's state now. */
  digest(): Promise<string>;
}

/** Adds entries to a restore stage; the cache does not see them until commitRestore. */
export async function stageRestore(host: RestoreHost, stage: string, entries: Array<[string, StagedEntry]>): Promise<Result<RestoreStaged>> {
  const info = host.store.stageInfo(stage);
  const now = host.now();
  host.stageOpened(info?.since ?? now);
  const incoming = entries.reduce((n, [key, e]) => n + key.length + e.value.length, 0);
  if ((info?.bytes ?? 0) + incoming > MAX_STAGE_BYTES) {
    return fail(413, "too_large", `a restore may stage at most ${MAX_STAGE_BYTES} bytes; discard it (DELETE /restore/${stage})`);
  }
  host.store.transaction(() => host.store.stageRows(stage, entries, info?.since ?? now));
  await host.ensureAlarm();
  return ok({ stage, staged: host.store.stageInfo(stage)?.rows ?? 0 });
}

/**
 * Replaces the whole cache with a stage, if the stage is exactly what the caller uploaded: `count` rows that
 * hash to `digest` (design.md §2). One transaction, so a failed or interrupted restore leaves the old contents.
 */
export async function commitRestore(host: RestoreHost, stage: string, expect: { digest: string; count: number }): Promise<Result<RestoreResult>> {
  const rows = host.store.loadStage(stage);
  if (rows.length === 0 && expect.count !== 0) return fail(409, "conflict", `no restore stage ${JSON.stringify(stage)} (discarded after an hour, or never staged)`);
  if (rows.length !== expect.count) return fail(400, "bad_request", `stage holds ${rows.length} entries; the file has ${expect.count}: upload again`);
  const digest = await digestRows(rows.map(([key, e]) => [key, e.value, e.expiresAt] as const));
  if (digest !== expect.digest) return fail(400, "bad_request", `staged entries hash to ${digest}, not ${expect.digest}: nothing was changed`);
  const now = host.now();
  const live = rows.filter(([, e]) => e.expiresAt > now).sort((a, b) => a[1].lastAccessed - b[1].lastAccessed);
  let evicted = 0;
  host.forgetContents();
  const generation = host.mutate(() => {
    host.store.deleteAllEntries();
    host.index.clear();
    for (const [key, e] of live) {
      const entry: MemoryEntry = { ...e, size: snapshotEntryBytes(key, e.value, e.freshUntil !== undefined) };
      if (entry.size > host.maxBytes) {
        evicted++;
        continue;
      }
      evicted += host.index.set(key, entry).length;
    }
    for (const [key, entry] of host.index.entries()) {
      host.store.putEntry(key, entry);
      host.scheduleExpiry(entry.expiresAt);
    }
    host.store.deleteStage(stage);
  });
  // Counted and digested now: writes that arrive while the follow-up runs (write-through's KV write is network
  // I/O) are theirs to report, and the digest must describe the generation this restore reports.
  const restored = host.index.size;
  const digested = host.digest();
  await host.afterMutation();
  const result: RestoreResult = { restored, skippedExpired: rows.length - live.length, evicted, generation, digest: await digested };
  host.log("info", "CACHE_DO_PERSIST", "restored", { ...result });
  return ok(result);
}
