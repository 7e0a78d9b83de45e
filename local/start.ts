import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { LOCAL_STACK_FILE } from "../cli/config/local-stack.js";
import { PortInUseError, startStack } from "./stack.js";

/** `npm start`: the local stack, demo data, a banner, and a clean stop on Ctrl-C. */
const DEMO = [
  { key: "quote:AAPL", value: { bid: 189.98, ask: 190.02, ts: "demo" }, ttlSeconds: 3600 },
  { key: "quote:MSFT", value: { bid: 415.1, ask: 415.16, ts: "demo" }, ttlSeconds: 3600 },
  { key: "fx:EURUSD", value: { rate: 1.0842 }, ttlSeconds: 600 },
  { key: "orderbook:BTC-USD", value: { bids: [[64000, 1.2]], asks: [[64010, 0.8]] }, ttlSeconds: 120 },
];

async function main() {
  const { values } = parseArgs({
    options: { fresh: { type: "boolean" }, port: { type: "string" }, "kv-port": { type: "string" }, quiet: { type: "boolean" }, "with-consumer": { type: "boolean" }, "persist-to": { type: "string" } },
  });
  const root = process.cwd();
  const port = values.port ? Number(values.port) : 8787;
  const started = Date.now();
  let stack;
  try {
    stack = await startStack({
      root,
      port,
      ...(values["kv-port"] ? { kvPort: Number(values["kv-port"]) } : {}),
      ...(values.fresh ? { fresh: true } : {}),
      ...(values["persist-to"] ? { persistTo: values["persist-to"] } : {}),
      ...(values.quiet ? { quiet: true } : {}),
      ...(values["with-consumer"] ? { consumerPort: port + 2 } : {}),
    });
  } catch (err) {
    if (err instanceof PortInUseError) {
      console.error(`error: ${err.message}: another \`npm start\` or \`wrangler dev\` is running.\nhint: stop it, or run \`npm start -- --port ${port + 10}\``);
      process.exit(2);
    }
    throw err;
  }
  const { info, adminKey } = stack;
  writeFileSync(join(root, LOCAL_STACK_FILE), `${JSON.stringify(info, null, 2)}\n`);

  // With the admin API disabled there is nothing to ask and nothing to seed: say so instead.
  let dataLine = "admin API disabled: no demo entries seeded";
  if (adminKey.source !== "disabled") {
    const headers = { "x-api-key": info.apiKey, "content-type": "application/json" };
    const stats = (await (await fetch(`${info.url}/api/v1/cache/stats`, { headers })).json()) as { data: { size: number } };
    if (stats.data.size === 0) {
      await fetch(`${info.url}/api/v1/cache/seed`, { method: "POST", headers, body: JSON.stringify({ entries: DEMO, flush: true }) });
    }
    dataLine = stats.data.size === 0 ? `seeded ${DEMO.length} demo entries` : `kept ${stats.data.size} entries from the last run (npm start -- --fresh to wipe)`;
  }
  const keyLine = adminKey.source === "disabled" ? `Admin API            ${adminKey.describe}` : `Admin key            ${info.apiKey} (${adminKey.describe})`;
  const readyMs = Date.now() - started;
  console.log(`
tftcache local stack ready in ${readyMs} ms
  Worker (workerd)     ${info.url}
  ${keyLine}
  KV REST API          ${info.cfApiBase}
  KV namespace         ${info.namespaceId} (CACHE_DO_KV preview_id, state in .wrangler/state/v3)
${stack.consumerUrl ? `  Consumer Worker      ${stack.consumerUrl}/quote/AAPL   (examples/consumer, service binding to CacheService)\n` : ""}  ${dataLine}

In another terminal:
  ./bin/tftcache --local stats          # --local reads ${LOCAL_STACK_FILE}; no exports needed
or export these for plain \`tftcache\`:
  export TFTCACHE_URL=${info.url}
${adminKey.source === "disabled" ? "" : `  export TFTCACHE_API_KEY=${info.apiKey}\n`}  export CLOUDFLARE_ACCOUNT_ID=${info.accountId}
  export CLOUDFLARE_API_TOKEN=${info.apiToken}
  export TFTCACHE_KV_NAMESPACE_ID=${info.namespaceId}
  export CLOUDFLARE_API_BASE_URL=${info.cfApiBase}

Ctrl-C to stop.`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    console.log("\nstopping…");
    await stack.stop();
    process.exit(0);
  };
  // First in line: Miniflare registers its own exit hook when constructed, which disposes workerd and exits.
  process.prependListener("SIGINT", stop);
  process.prependListener("SIGTERM", stop);
}

main().catch((err) => {
  console.error(`error: the local stack failed to start: ${(err as Error).message}`);
  process.exit(2);
});
