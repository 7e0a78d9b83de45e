// Types `env` from "cloudflare:workers" (and in tests, "cloudflare:test") as this Worker's bindings.
declare namespace Cloudflare {
  interface Env extends import("./env.js").Env {}
}
