/**
 * A Worker that holds only the CacheService binding and tries every name it can think of: the way issue 11's
 * "any Worker with a service binding can clear the cache" was found. POST / with
 * `[{ call: name, args }, { get: name }, { call, args, then: { call, args } }]`; the string "$loader" in args
 * stands for a loader function. Answers, per attempt, whether it threw and what came back.
 */
interface Attempt {
  call?: string;
  get?: string;
  args?: unknown[];
  then?: { call: string; args?: unknown[] };
}

const withLoader = (args: unknown[] = []) => args.map((a) => (a === "$loader" ? () => ({ pwned: true }) : a));

function describe(value: unknown): unknown {
  if (value === undefined) return "undefined";
  if (typeof value === "function") return "function";
  try {
    return JSON.parse(JSON.stringify(value) ?? "null");
  } catch {
    return Object.prototype.toString.call(value);
  }
}

export default {
  async fetch(request: Request, env: { TFTCACHE: Record<string, any> }): Promise<Response> {
    const attempts = (await request.json()) as Attempt[];
    const results = [];
    for (const attempt of attempts) {
      const label = attempt.get !== undefined ? `get ${attempt.get}` : `${attempt.call}(${JSON.stringify(attempt.args ?? [])})${attempt.then ? `.${attempt.then.call}()` : ""}`;
      try {
        let value: unknown;
        if (attempt.get !== undefined) {
          value = await env.TFTCACHE[attempt.get];
        } else if (attempt.then) {
          value = await env.TFTCACHE[attempt.call!](...withLoader(attempt.args))[attempt.then.call](...withLoader(attempt.then.args));
        } else {
          value = await env.TFTCACHE[attempt.call!](...withLoader(attempt.args));
        }
        results.push({ label, threw: false, value: describe(value) });
      } catch (err) {
        results.push({ label, threw: true, error: String((err as Error)?.message ?? err) });
      }
    }
    return Response.json(results);
  },
};
