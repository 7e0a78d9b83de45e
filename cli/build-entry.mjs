// The CLI's start-up file, dist/cli/entry.js (what bin/tftcache runs), bundled from the compiled dist/cli/main.js
// by `npm run build` after tsc. `tftcache --version` and `--help` should cost about what `node -e 0` does, and
// loading main, program and commander as one module instead of nine saves a fifth of that; commander's
// `node:child_process` (only used for executable subcommands, which tftcache has none of) is loaded on first use
// instead of at start. Every `import("./…")` a command makes stays a separate file of tsc's output, loaded when
// the command runs, so the bundle holds the start-up path and nothing else.
import { build } from "esbuild";

const lazyChildProcess = {
  name: "tftcache-startup",
  setup(b) {
    // Command modules, context, errors: tsc's files beside the bundle, imported when needed.
    b.onResolve({ filter: /^\.\.?\// }, (args) => (args.kind === "dynamic-import" ? { path: args.path, external: true } : undefined));
    b.onResolve({ filter: /^node:child_process$/ }, () => ({ path: "child_process", namespace: "lazy" }));
    b.onLoad({ filter: /.*/, namespace: "lazy" }, () => ({
      contents: 'let m; module.exports = new Proxy({}, { get(_, k) { m ??= require("node:child_process"); return m[k]; } });',
      loader: "js",
    }));
  },
};

await build({
  entryPoints: [new URL("../dist/cli/main.js", import.meta.url).pathname],
  outfile: new URL("../dist/cli/entry.js", import.meta.url).pathname,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  plugins: [lazyChildProcess],
  // Less source for V8 to compile at every start (commander's comments are most of it).
  minify: true,
  legalComments: "eof",
  // commander is CommonJS: its require() calls need a require in an ES module.
  banner: { js: 'import { createRequire as __tftcacheCreateRequire } from "node:module";\nconst require = __tftcacheCreateRequire(import.meta.url);' },
  logLevel: "error",
});
