import type { KvStatus } from "../protocol/index.js";
import { allMatch, compareSnapshots, type CompareItem, type Comparison } from "./compare.js";
import type { CommandContext } from "./context.js";
import { inspectKvTexts, liveAtWrite, readKvTexts, type KvInspection, type EntriesKeyReport, type StatsKeyReport } from "./kv-inspect.js";

export interface LagReport {
  /** DO generation minus KV generation (0 when in step). */
  generations: number;
  /** Seconds since the first mutation KV has not seen yet (from the DO's `kv.pendingSince`). */
  seconds: number;
  /** Whether --max-lag-seconds tolerates it. */
  tolerated: boolean;
}

/** The summary shape of design.md §4, shared by `diff` and `verify-kv`. */
export interface SyncReport {
  status: "match" | "drift" | "error";
  counts: Comparison["counts"];
  items: CompareItem[];
  kv: { entries: EntriesKeyReport; stats: StatsKeyReport; lag: LagReport | null };
  do: { generation: number; entries: number; digest: string };
  /** Why the status is drift, one sentence each, in the order a person should read them. */
  problems: string[];
}

/**
 * Reads the DO's state and both KV keys, and judges them. Throws only when the check itself cannot run.
 *
 * Fast paths, fastest first. `/metadata` names the DO's generation and digest, and its record of the body it last
 * flushed (generation, digest, SHA-256 of the bytes, entry count, earliest expiry):
 * 1. KV's bytes hash to that record at the DO's generation, no entry has expired since, and no keys are wanted
 *    (verify-kv): the record describes KV exactly, so KV is not even parsed.
 * 2. They hash to it otherwise: parsed, but its digest holds without canonicalising every value again.
 * 3. Any other bytes: parsed and their digest verified here.
 * When KV's snapshot is intact and holds the DO's generation and digest, the two are equal entry for entry, so
 * the DO's full snapshot is not downloaded and no key is compared; the report is the one the per-key compare would
 * have produced. Otherwise `/snapshot` is fetched and every key compared, exactly as detailed as ever.
 */
export async function buildSyncReport(
  ctx: CommandContext,
  opts: { requireStats: boolean; maxLagSeconds?: number; includeMatches: boolean; full?: boolean },
): Promise<SyncReport> {
  const admin = ctx.admin();
  const kvClient = ctx.kv();
  const [meta, texts] = await Promise.all([admin.metadata(), readKvTexts(kvClient, { stats: opts.requireStats })]);
  const now = Date.now();
  // The DO's record of the body it flushed for its current generation: KV bytes hashing to it need no re-verifying.
  const flushed = !opts.full && meta.flushed?.generation === meta.generation ? meta.flushed : undefined;
  const kv = await inspectKvTexts(texts, flushed, { needKeys: opts.includeMatches, now });
  if (kv.asFlushed) {
    // Every entry of the record is live now (inspectKvTexts checked): all of them match, none needs naming.
    const n = kv.asFlushed.entries;
    return judge({ generation: meta.generation, entries: n, digest: meta.digest }, { counts: { match: n, differ: 0, onlyInDo: 0, onlyInKv: 0 }, items: [] }, meta.kv, kv, opts, now);
  }
  const same = !opts.full && kv.entries.state === "present" && kv.snapshot !== null && kv.entries.generation === meta.generation && kv.entries.digest === meta.digest;
  const doSnap = same ? kv.snapshot! : await admin.snapshot();
  const comparison = same ? allMatch(doSnap, now) : compareSnapshots(doSnap, kv.snapshot, now, kv.canonical);
  return judge({ generation: doSnap.generation, entries: liveAtWrite(doSnap), digest: doSnap.digest }, comparison, meta.kv, kv, opts, now);
}

/** The verdict on KV against the DO: `doSide` describes the DO's snapshot, `comparison` its entries against KV's. */
export function judge(
  doSide: SyncReport["do"],
  comparison: Comparison,
  doKv: KvStatus,
  kv: KvInspection,
  opts: { requireStats: boolean; maxLagSeconds?: number; includeMatches: boolean },
  now: number,
): SyncReport {
  const problems: string[] = [];
  const e = kv.entries;
  if (e.state === "missing") problems.push("do_cache_entries is missing from KV");
  if (e.state === "unreadable") problems.push(`do_cache_entries is unreadable: ${e.error}`);
  if (e.state === "torn") problems.push(`do_cache_entries is torn: ${e.error}`);
  if (opts.requireStats) {
    if (kv.stats.state === "missing") problems.push("do_cache_stats is missing from KV");
    if (kv.stats.state === "unreadable") problems.push(`do_cache_stats is unreadable: ${kv.stats.error}`);
    // do_cache_stats rides every tenth scheduled flush, so it may describe an older generation than the entries
    // key; one that claims a newer generation, or the same one with another size, contradicts it.
    if (kv.stats.state === "present" && e.generation !== undefined && kv.stats.generation !== undefined && kv.stats.generation > e.generation) {
      problems.push(`do_cache_stats (generation ${kv.stats.generation}) is newer than do_cache_entries (generation ${e.generation}): the pair contradicts itself`);
    }
    // Live when written: a record's entries all were; a parsed snapshot's are counted.
    const live = kv.asFlushed ? kv.asFlushed.entries : kv.snapshot ? liveAtWrite(kv.snapshot) : null;
    if (kv.statsDoc && live !== null && e.state === "present" && kv.stats.generation === e.generation) {
      if (kv.statsDoc.size !== live) problems.push(`do_cache_stats says size ${kv.statsDoc.size} but do_cache_entries holds ${live} live entries`);
    }
  }

  // Whatever lag is tolerated, a KV the DO cannot write will not catch up by itself.
  if (doKv.writable === false) problems.push(`the DO reports that KV cannot be written: ${doKv.lastError ?? "no reason given"}`);

  const differs = comparison.counts.differ + comparison.counts.onlyInDo + comparison.counts.onlyInKv > 0;

  let lag: LagReport | null = null;
  const kvGeneration = e.generation ?? 0;
  if (e.state === "present" && kvGeneration < doSide.generation) {
    const since = doKv.pendingSince ?? now;
    const seconds = Math.max(0, Math.round((now - since) / 100) / 10);
    const tolerated = opts.maxLagSeconds !== undefined && seconds <= opts.maxLagSeconds;
    lag = { generations: doSide.generation - kvGeneration, seconds, tolerated };
    if (!tolerated) {
      const limit = opts.maxLagSeconds === undefined ? "" : ` (more than --max-lag-seconds ${opts.maxLagSeconds})`;
      problems.push(`KV is behind the DO by ${lag.generations} generation${lag.generations === 1 ? "" : "s"}, ${seconds}s${limit}`);
    }
  } else if (e.state === "present" && kvGeneration > doSide.generation) {
    problems.push(`KV (generation ${kvGeneration}) is ahead of the DO (generation ${doSide.generation}): another writer, or the DO lost state`);
  }
  // Content differences that are fully explained by a tolerated lag are not drift.
  if (differs && !lag?.tolerated && e.state !== "missing" && e.state !== "unreadable") {
    const { differ, onlyInDo, onlyInKv } = comparison.counts;
    problems.push(`entries differ: ${differ} changed, ${onlyInDo} only in the DO, ${onlyInKv} only in KV`);
  }

  return {
    status: problems.length === 0 ? "match" : "drift",
    counts: comparison.counts,
    items: opts.includeMatches ? comparison.items : comparison.items.filter((i) => i.status !== "match"),
    kv: { entries: e, stats: kv.stats, lag },
    do: doSide,
    problems,
  };
}
