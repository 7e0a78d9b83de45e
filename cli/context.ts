import type { Dispatcher } from "undici";
import { resolveSettings, requireSetting, type GlobalFlags, type SecretName, type Settings } from "./config/settings.js";
import { CliError } from "./errors.js";
import { AdminClient } from "./http/admin-client.js";
import { KvRestClient } from "./http/kv-client.js";
import type { HttpOptions } from "./http/send.js";
import type { Io } from "./io.js";
import { Output } from "./output.js";
import { createRedactor } from "./redact.js";

/** Test seams: an undici dispatcher (MockAgent) and a clock-free sleep. */
export interface RunOptions {
  dispatcher?: Dispatcher;
  /** Runs once a command (not --help or --version) is about to load: the process entry sets V8 flags here. */
  beforeCommand?: () => Promise<void>;
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
    for (const note of this.settings.notes) this.out.note(`note: ${note}`);
    this.http = {
      timeoutMs: this.settings.timeoutMs,
      retries: run.retries ?? 3,
      ...(run.dispatcher ? { dispatcher: run.dispatcher } : {}),
      ...(run.sleep ? { sleep: run.sleep } : {}),
      onRetry: ({ attempt, delayMs, reason }) => {
        // A long Retry-After is said even without --verbose: a silent minute looks like a hang.
        if (this.settings.verbose) this.out.note(`retrying (${reason}), attempt ${attempt} in ${delayMs} ms`);
        else if (delayMs >= 5_000) this.out.note(`${reason}: waiting ${Math.round(delayMs / 1000)} s as the server asked (Retry-After), then retrying (attempt ${attempt})`);
      },
    };
  }

  /** A secret that cannot be sent is a usage error (exit 2), never a network error; the message omits it. */
  private secret(name: SecretName, purpose: string): string {
    const value = requireSetting(this.settings, name, purpose);
    const problem = this.settings.secretProblems[name];
    if (problem) {
      throw new CliError(problem, { hint: name === "apiKey" ? "check --api-key / TFTCACHE_API_KEY / apiKey in the config file: a key is one line of printable characters" : "check --api-token / CLOUDFLARE_API_TOKEN / apiToken in the config file: a token is one line of printable characters" });
    }
    return value;
  }

  admin(): AdminClient {
    const url = requireSetting(this.settings, "url", "talking to the Worker");
    const key = this.secret("apiKey", "the admin API");
    return new AdminClient(url, key, this.http);
  }

  kv(): KvRestClient {
    const account = requireSetting(this.settings, "accountId", "reading KV through Cloudflare's API");
    const token = this.secret("apiToken", "reading KV through Cloudflare's API");
    const ns = requireSetting(this.settings, "namespaceId", "reading KV through Cloudflare's API");
    return new KvRestClient(this.settings.cfApiBase, account, ns, token, this.http);
  }
}
