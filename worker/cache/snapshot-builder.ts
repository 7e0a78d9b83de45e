import { digestRows, type DigestRow } from "../../protocol/index.js";
import { compareKeys } from "../../protocol/canonical.js";
import { keptUntil, type MemoryEntry } from "./memory.js";

/** An entry whose value has been read (see MemoryEntry.value). */
export type LiveEntry = MemoryEntry & { value: string };

/** The costly part of a snapshot: the entries array as JSON text and its digest. */
export interface SnapshotBody {
  entriesJson: string;
  digest: string;
  /** Rows in the body: the live entries and the expired ones stale-if-error still keeps. */
  count: number;
  /** Of those, the entries live when it was built (expiresAt after then): what stats' `size` counts. */
  live: number;
  /**
   * When the body stops describing the state: the earliest expiry of a live entry (from then on it holds fewer
   * live entries), or the end of a kept row's stale-if-error window (the sweep deletes it).
   */
  validUntil: number;
}

export interface SnapshotText {
  text: string;
  digest: string;
  count: number;
  /** Entries live at `writtenAt` (the body's `live`). */
  live: number;
  /** The body's validUntil, or null when nothing in it ever changes. */
  validUntil: number | null;
}

/**
 * Serialises the held entries (see CacheDurableObject.heldEntries: live ones, and expired ones stale-if-error keeps,
 * with their past expiresAt, which every reader skips as expired) into the `entries` array of `do_cache_entries`.
 * Values are already canonical JSON text, so the array is assembled by concatenation: no parse, no re-stringify
 * of 10,000 values per flush.
 */
export async function buildSnapshotBody(held: Array<[string, LiveEntry]>, now: number): Promise<SnapshotBody> {
  held.sort((a, b) => compareKeys(a[0], b[0]));
  const rows: DigestRow[] = held.map(([key, e]) => [key, e.value, e.expiresAt]);
  const digest = await digestRows(rows);
  let validUntil = Number.POSITIVE_INFINITY;
  let live = 0;
  const parts = held.map(([key, e]) => {
    const changesAt = e.expiresAt > now ? e.expiresAt : keptUntil(e);
    if (e.expiresAt > now) live++;
    if (changesAt < validUntil) validUntil = changesAt;
    // freshUntil is an optional extension (stale-while-revalidate); it is not part of the digest.
    return `[${JSON.stringify(key)},{"value":${e.value},"expiresAt":${e.expiresAt},"lastAccessed":${e.lastAccessed},"cachedAt":${e.cachedAt}${e.freshUntil === undefined ? "" : `,"freshUntil":${e.freshUntil}`}}]`;
  });
  return { entriesJson: `[${parts.join(",")}]`, digest, count: held.length, live, validUntil };
}

/** The whole `do_cache_entries` document around a body. */
export function snapshotText(body: SnapshotBody, generation: number, writtenAt: number): SnapshotText {
  const text = `{"format":1,"generation":${generation},"writtenAt":${writtenAt},"digest":${JSON.stringify(body.digest)},"entries":${body.entriesJson}}`;
  return { text, digest: body.digest, count: body.count, live: body.live, validUntil: Number.isFinite(body.validUntil) ? body.validUntil : null };
}

/**
 * Builds a snapshot body once per generation, not once per flush attempt, `/metadata` and `/snapshot` call. A
 * body stays valid until the generation moves or one of its entries expires. Read times (`lastAccessed`) are
 * those of the build: reads do not move the generation, and the digest does not cover them.
 */
export class SnapshotMemo {
  private memo: { generation: number; body: SnapshotBody } | null = null;
  builds = 0;

  async get(generation: number, now: number, held: () => Array<[string, LiveEntry]>): Promise<SnapshotBody> {
    const m = this.memo;
    if (m && m.generation === generation && now < m.body.validUntil) return m.body;
    this.builds++;
    const body = await buildSnapshotBody(held(), now);
    this.memo = { generation, body };
    return body;
  }

  clear(): void {
    this.memo = null;
  }
}
