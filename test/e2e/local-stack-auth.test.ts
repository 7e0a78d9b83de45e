import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startStack, type Stack } from "../../local/stack.js";
import { ROOT, freePorts, tempDir } from "./stack-harness.js";

// A stack of its own: the throttle blocks this client for a minute, which would disturb the other e2e files.
let stack: Stack;

beforeAll(async () => {
  const [port, kvPort] = (await freePorts(2)) as [number, number];
  stack = await startStack({ root: ROOT, port, kvPort, persistTo: join(tempDir(), "state"), quiet: true, adminKey: "local-stack-auth-key-0123456789", vars: { LOG_LEVEL: "error" } });
}, 60_000);

afterAll(async () => {
  await stack?.stop();
});

describe("npm start simulates wrangler.toml's AUTH_RATE_LIMITER like wrangler dev", () => {
  it("answers 429 with Retry-After after 10 wrong keys, then refuses the right key from that client too", async () => {
    const call = (key: string) => fetch(`${stack.info.url}/api/v1/cache/stats`, { headers: { "x-api-key": key } });
    const statuses: number[] = [];
    for (let i = 0; i < 12; i++) {
      const res = await call(`guess-${i}`);
      statuses.push(res.status);
      await res.arrayBuffer();
    }
    expect(statuses.slice(0, 10)).toEqual(Array(10).fill(401));
    expect(statuses.slice(10)).toEqual([429, 429]);
    const right = await call(stack.info.apiKey);
    expect(right.status).toBe(429);
    expect(Number(right.headers.get("retry-after"))).toBeGreaterThan(0);
  });
});
