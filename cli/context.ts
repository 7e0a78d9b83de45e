import type { Dispatcher } from "undici";
import { resolveSettings, requireSetting, type GlobalFlags, type Settings } from "./config/settings.js";
import { AdminClient } from "./http/admin-client.js";
import { KvRestClient } from "./http/kv-client.js";
import type { HttpOptions } from "./http/send.js";
import type { Io } from "./io.js";
import { Output } from "./output.js";
import { createRedactor } from "./redact.js";

/** Test seams: an undici dispatcher (MockAgent) and a clock-free sleep. */
export interface RunOptions {
  dispatcher?: Dispatcher;
  sleep?: (ms: number) => Promise<void>;
  retries?: number;
}

/** What every command receives: resolved settings, output, and lazily built API clients. */
export class CommandContext {
  readonly settings: Settings;
  readonly out: Output;
  readonly http: HttpOptions;

  constructor(
    readonly io: Io,
    flags: GlobalFlags,
    readonly run: RunOptions = {},
  ) {
    this.settings = resolveSettings(flags, io.env, io.cwd);
    const redact = createRedactor([this.settings.apiKey, this.settings.apiToken]);
    this.out = new Output(io, { json: this.settings.json, color: this.settings.color }, redact);
    this.http = {
      timeoutMs: this.settings.timeoutMs,
      retries: run.retries ?? 3,
      ...(run.dispatcher ? { dispatcher: run.dispatcher } : {}),
      ...(run.sleep ? { sleep: run.sleep } : {}),
      onRetry: ({ attempt, delayMs, reason }) => {
        if (this.settings.verbose) this.out.note(`retrying (${reason}), attempt ${attempt} in ${delayMs} ms`);
      },
    };
  }

  admin(): AdminClient {
    const url = requireSetting(this.settings, "url", "talking to the Worker");
    const key = requireSetting(this.settings, "apiKey", "the admin API");
    return new AdminClient(url, key, this.http);
  }

  kv(): KvRestClient {
    const account = requireSetting(this.settings, "accountId", "reading KV through Cloudflare's API");
    const token = requireSetting(this.settings, "apiToken", "reading KV through Cloudflare's API");
    const ns = requireSetting(this.settings, "namespaceId", "reading KV through Cloudflare's API");
    return new KvRestClient(this.settings.cfApiBase, account, ns, token, this.http);
  }
}
