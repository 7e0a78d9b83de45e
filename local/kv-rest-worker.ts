/**
 * The local KV REST stand-in (kv-rest-api.ts) as a Worker of the local stack: it runs in workerd beside tftcache,
 * bound to the same CACHE_DO_KV namespace, on its own port. A value streams from workerd's KV store to the client
 * as it would from Cloudflare's API; the Node server this replaced held a whole 11 MB snapshot in memory, crossing
 * Miniflare's binding proxy first, before it sent a byte.
 */
import { createKvRestHandler, type KvLike } from "./kv-rest-api.js";

export interface KvRestEnv {
  CACHE_DO_KV: KvLike;
  KV_REST_ACCOUNT_ID: string;
  KV_REST_NAMESPACE_ID: string;
  KV_REST_TOKEN: string;
}

let handler: { env: KvRestEnv; handle: (request: Request) => Promise<Response> } | undefined;

export default {
  async fetch(request: Request, env: KvRestEnv): Promise<Response> {
    if (handler?.env !== env) handler = { env, handle: createKvRestHandler({ kv: env.CACHE_DO_KV, accountId: env.KV_REST_ACCOUNT_ID, namespaceId: env.KV_REST_NAMESPACE_ID, token: env.KV_REST_TOKEN }) };
    try {
      return await handler.handle(request);
    } catch (err) {
      return Response.json({ success: false, errors: [{ code: 10001, message: `local KV API failure: ${(err as Error).message}` }], messages: [], result: null }, { status: 500 });
    }
  },
};
