// Types `env` and `exports` from "cloudflare:workers" (also used by tests) as this Worker's bindings and exports.
import type { Env as WorkerEnv } from "./env.js";

declare global {
  namespace Cloudflare {
    interface Env extends WorkerEnv {}
    interface GlobalProps {
      mainModule: typeof import("./index.js");
    }
  }
}
