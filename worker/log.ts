export type LogLevel = "debug" | "info" | "warn" | "error";
export type LogTag = "CACHE_DO_INIT" | "CACHE_DO_PERSIST" | "DUAL_CACHE_DO" | "CACHE_DO_KV_FLUSH" | "CACHE_DO_CLEAR";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

export type Logger = (level: LogLevel, tag: LogTag, event: string, fields?: Record<string, unknown>) => void;

/**
 * One line of JSON per event, so Workers Logs / `wrangler tail` can filter on `tag`. Hit/miss lines are `debug`:
 * at production volume a line per read is the bill, not the signal.
 */
export function createLogger(minLevel: LogLevel): Logger {
  return (level, tag, event, fields) => {
    if (RANK[level] < RANK[minLevel]) return;
    const line = JSON.stringify({ level, tag, event, ts: Date.now(), ...fields });
    if (level === "error") console.error(line);
    else if (level === "warn") console.warn(line);
    else console.log(line);
  };
}
