import { API_PREFIX, MIN_ADMIN_KEY_LENGTH, VERSION } from "../protocol/index.js";
import { configOf } from "./config.js";
import type { Env } from "./env.js";
import { createLogger } from "./log.js";
import { adminRouter } from "./http/admin.js";
import { authorize } from "./http/auth.js";
import { discardBody } from "./http/body.js";
import { HttpError, error, json } from "./http/envelope.js";

// Everything exported here is an entrypoint to workerd: only handlers and classes, never constants.
export { CacheDurableObject } from "./cache/cache-do.js";
export { CacheService } from "./service.js";
export type { Env } from "./env.js";

let weakKeyWarned = false;

function warnOnceIfWeak(key: string | undefined): void {
  if (weakKeyWarned || !key || key.length >= MIN_ADMIN_KEY_LENGTH) return;
  weakKeyWarned = true;
  createLogger("warn")("warn", "CACHE_DO_INIT", "config_problem", {
    problem: `ADMIN_API_KEY is ${key.length} characters; use at least ${MIN_ADMIN_KEY_LENGTH} random ones (openssl rand -hex 32 | wrangler secret put ADMIN_API_KEY)`,
  });
}

/**
 * The Worker's front door: `/health` without auth, the admin API under `/api/v1/cache` behind the key, and an
 * error envelope for everything else. Every failure is an envelope; nothing here can answer with a stack trace.
 */
export async function handleRequest(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  const path = url.pathname;
  try {
    if (path === "/health") {
      await discardBody(request);
      if (request.method !== "GET" && request.method !== "HEAD") {
        return error(405, "method_not_allowed", `${request.method} is not allowed on /health; allowed: GET`, undefined, { allow: "GET" });
      }
      return json({ status: "ok", version: VERSION });
    }
    if (path !== API_PREFIX && !path.startsWith(`${API_PREFIX}/`)) {
      await discardBody(request);
      return error(404, "not_found", `no route for ${request.method} ${path}`);
    }
    warnOnceIfWeak(env.ADMIN_API_KEY);
    // Authenticate before routing, so an unauthenticated caller learns nothing about which paths exist.
    const denied = await authorize(request, env.ADMIN_API_KEY, env.AUTH_RATE_LIMITER);
    if (denied) {
      await discardBody(request);
      return denied;
    }
    const { config } = configOf(env);
    const response = await adminRouter.handle(request.method, path.slice(API_PREFIX.length) || "/", { request, url, env, config });
    await discardBody(request);
    return response;
  } catch (err) {
    await discardBody(request);
    if (err instanceof HttpError) return error(err.status, err.code, err.message, err.details);
    createLogger("error")("error", "CACHE_DO_PERSIST", "unhandled", { path, error: err instanceof Error ? err.message : String(err) });
    return error(500, "internal_error", "internal error; see the Worker's logs");
  }
}

export default {
  fetch: (request, env) => handleRequest(request, env),
} satisfies ExportedHandler<Env>;
