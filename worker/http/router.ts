import { error } from "./envelope.js";

export type Handler<C> = (ctx: C, params: Record<string, string>) => Promise<Response> | Response;
type MethodMap<C> = Partial<Record<string, Handler<C>>>;

interface Route<C> {
  segments: string[];
  methods: MethodMap<C>;
}

/**
 * A tiny path router in the spirit of Hono's: literal segments and one `:param` kind, exact match, and a 405
 * with an `Allow` header when the path exists but the method does not. Params arrive still percent-encoded;
 * decoding (and rejecting malformed encodings) is the handler's job, because only it knows what is a key.
 */
export class Router<C> {
  private readonly routes: Route<C>[] = [];

  on(path: string, methods: MethodMap<C>): this {
    this.routes.push({ segments: path.split("/").filter(Boolean), methods });
    return this;
  }

  async handle(method: string, path: string, ctx: C): Promise<Response> {
    const parts = path.split("/").filter(Boolean);
    // "/entries/" is the entry route with an empty key (a 400 its handler explains), before it is the listing.
    const shapes = path.endsWith("/") && parts.length > 0 ? [[...parts, ""], parts] : [parts];
    for (const shape of shapes) {
      for (const route of this.routes) {
        const params = match(route.segments, shape);
        if (!params) continue;
        const handler = route.methods[method] ?? (method === "HEAD" ? route.methods.GET : undefined);
        if (!handler) {
          const allow = [...Object.keys(route.methods), ...(route.methods.GET && !route.methods.HEAD ? ["HEAD"] : [])].join(", ");
          return error(405, "method_not_allowed", `${method} is not allowed on ${path}; allowed: ${allow}`, undefined, { allow });
        }
        const response = await handler(ctx, params);
        // HEAD is GET without the body (RFC 9110), as curl -I and monitoring probes expect.
        return method === "HEAD" && !route.methods.HEAD ? new Response(null, { status: response.status, headers: response.headers }) : response;
      }
    }
    return error(404, "not_found", `no route for ${method} ${path}`);
  }
}

function match(segments: string[], parts: string[]): Record<string, string> | null {
  if (segments.length !== parts.length) return null;
  const params: Record<string, string> = {};
  for (let i = 0; i < segments.length; i++) {
    const seg = segments[i]!;
    if (seg.startsWith(":")) params[seg.slice(1)] = parts[i]!;
    else if (seg !== parts[i]) return null;
  }
  return params;
}
