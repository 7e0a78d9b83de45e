import { digestRows, type DigestRow } from "../../protocol/index.js";
import { compareKeys } from "../../protocol/canonical.js";
import type { MemoryEntry } from "./memory.js";

/** An entry whose value has been read (see MemoryEntry.value). */
export type LiveEntry = MemoryEntry & { value: string };

/** The costly part of a snapshot: the entries array as JSON text and its digest. */
export interface SnapshotBody {
  entriesJson: string;
  digest: string;
  count: number;
  /** The earliest expiry among the entries: from then on the body no longer describes the live state. */
  validUntil: number;
}

export interface SnapshotText {
  text: string;
  digest: string;
  count: number;
  /** The body's earliest expiry, or null when no entry expires. */
  validUntil: number | null;
}

/**
 * Serialises live entries into the `entries` array of `do_cache_entries`. Values are already canonical JSON
 * text, so the array is assembled by concatenation: no parse, no re-stringify of 10,000 values per flush.
 */
export async function buildSnapshotBody(live: Array<[string, LiveEntry]>): Promise<SnapshotBody> {
  live.sort((a, b) => compareKeys(a[0], b[0]));
  const rows: DigestRow[] = live.map(([key, e]) => [key, e.value, e.expiresAt]);
  const digest = await digestRows(rows);
  let validUntil = Number.POSITIVE_INFINITY;
  const parts = live.map(([key, e]) => {
    if (e.expiresAt < validUntil) validUntil = e.expiresAt;
    // freshUntil is an optional extension (stale-while-revalidate); it is not part of the digest.
    return `[${JSON.stringify(key)},{"value":${e.value},"expiresAt":${e.expiresAt},"lastAccessed":${e.lastAccessed},"cachedAt":${e.cachedAt}${e.freshUntil === undefined ? "" : `,"freshUntil":${e.freshUntil}`}}]`;
  });
  return { entriesJson: `[${parts.join(",")}]`, digest, count: live.length, validUntil };
}

/** The whole `do_cache_entries` document around a body. */
export function snapshotText(body: SnapshotBody, generation: number, writtenAt: number): SnapshotText {
  const text = `{"format":1,"generation":${generation},"writtenAt":${writtenAt},"digest":${JSON.stringify(body.digest)},"entries":${body.entriesJson}}`;
  return { text, digest: body.digest, count: body.count, validUntil: Number.isFinite(body.validUntil) ? body.validUntil : null };
}

/**
 * Builds a snapshot body once per generation, not once per flush attempt, `/metadata` and `/snapshot` call. A
 * body stays valid until the generation moves or one of its entries expires. Read times (`lastAccessed`) are
 * those of the build: reads do not move the generation, and the digest does not cover them.
 */
export class SnapshotMemo {
  private memo: { generation: number; body: SnapshotBody } | null = null;
  builds = 0;

  async get(generation: number, now: number, live: () => Array<[string, LiveEntry]>): Promise<SnapshotBody> {
    const m = this.memo;
    if (m && m.generation === generation && now < m.body.validUntil) return m.body;
    this.builds++;
    const body = await buildSnapshotBody(live());
    this.memo = { generation, body };
    return body;
  }

  clear(): void {
    this.memo = null;
  }
}
