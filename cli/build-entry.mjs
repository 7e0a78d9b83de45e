// The CLI as bin/tftcache runs it: dist/cli/entry.js and dist/cli/chunks/, bundled from tsc's dist/cli/main.js by
// `npm run build`. `tftcache --version` and `--help` should cost about what `node -e 0` does: entry.js holds the
// start-up path (main, program, commander) and nothing else; commander's `node:child_process` (only used for
// executable subcommands, which tftcache has none of) is loaded on first use. Every `import("./…")` a command
// makes becomes a chunk (code splitting), loaded when the command runs, its dependencies (undici, chalk,
// cli-table3) bundled in: resolving and reading undici's ~100 CommonJS files cost a command ~70 ms of CPU.
import { spawnSync } from "node:child_process";
import { rmSync, writeFileSync } from "node:fs";
import { build } from "esbuild";

const lazyChildProcess = {
  name: "tftcache-startup",
  setup(b) {
    b.onResolve({ filter: /^node:child_process$/ }, () => ({ path: "child_process", namespace: "lazy" }));
    // undici's HTTP/2 client loads node:http2 (~25 ms) at start; tftcache speaks HTTP/1.1 (undici's default, no
    // allowH2), so the bundle carries a stub that says so if it were ever reached.
    b.onResolve({ filter: /^\.\/client-h2\.js$/ }, (args) => (args.importer.includes("/node_modules/undici/") ? { path: "client-h2", namespace: "lazy" } : undefined));
    b.onLoad({ filter: /^client-h2$/, namespace: "lazy" }, () => ({
      contents: 'module.exports = function connectH2() { throw new Error("HTTP/2 is not part of the tftcache CLI bundle"); };',
      loader: "js",
    }));
    // undici's request() and errors without the rest of its index (see cli/http/undici-lite.cjs).
    b.onResolve({ filter: /^undici$/ }, (args) => (args.importer.includes("/dist/cli/") ? { path: new URL("./http/undici-lite.cjs", import.meta.url).pathname } : undefined));
    b.onLoad({ filter: /^child_process$/, namespace: "lazy" }, () => ({
      contents: 'let m; module.exports = new Proxy({}, { get(_, k) { m ??= require("node:child_process"); return m[k]; } });',
      loader: "js",
    }));
  },
};

const outdir = new URL("../dist/cli/", import.meta.url).pathname;
rmSync(`${outdir}chunks`, { recursive: true, force: true }); // chunk names carry content hashes: no stale ones

const result = await build({
  entryPoints: { entry: new URL("../dist/cli/main.js", import.meta.url).pathname },
  outdir,
  entryNames: "[name]",
  chunkNames: "chunks/[name]-[hash]",
  splitting: true,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  plugins: [lazyChildProcess],
  // Less source for V8 to compile at every start (commander's comments are most of it).
  minify: true,
  legalComments: "eof",
  // commander and undici are CommonJS: their require() calls need a require in an ES module.
  banner: { js: 'import { createRequire as __tftcacheCreateRequire } from "node:module";\nconst require = __tftcacheCreateRequire(import.meta.url);' },
  logLevel: "error",
  metafile: true,
});

// Which sources each output holds: test/e2e/startup.test.ts checks that --version loads no command or dependency.
const contents = Object.fromEntries(Object.entries(result.metafile.outputs).map(([file, out]) => [file.slice(file.indexOf("dist/cli/") + "dist/cli/".length), Object.keys(out.inputs)]));
writeFileSync(`${outdir}chunks/contents.json`, `${JSON.stringify(contents, null, 1)}\n`);

// `tftcache --version` and piped `--help`, kept as the program prints them (see cli/instant-answer.ts): the bundle
// just built runs once per flag with stdout a pipe, as bin/tftcache's would be, so the text is commander's own.
const entry = new URL("../dist/cli/entry.js", import.meta.url).href;
const printed = (flag) => {
  // node -e takes its argv after "--": [node, "_", flag]; main() reads process.argv.slice(2).
  const r = spawnSync(process.execPath, ["--input-type=module", "-e", `await (await import(${JSON.stringify(entry)})).main();`, "--", "_", flag], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
  if (r.status !== 0 || r.stderr !== "" || r.stdout === "") throw new Error(`rendering tftcache ${flag} failed (exit ${r.status}): ${r.stderr}`);
  return r.stdout;
};
const texts = { version: printed("--version"), help: printed("--help") };
await build({
  stdin: {
    contents: `import { answerInstantly } from "./instant-answer.js";\nconst texts = ${JSON.stringify(texts)};\nexport const answer = () => answerInstantly(texts);\n`,
    resolveDir: outdir,
    sourcefile: "instant-entry.js",
  },
  outfile: `${outdir}instant.js`,
  bundle: true,
  platform: "node",
  format: "esm",
  target: "node20",
  logLevel: "error",
});
