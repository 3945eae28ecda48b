// Bundle one OpenClaw plugin with esbuild (run by astrid_openclaw's compiler under Node).
// argv[2]: JSON {entry, outfile, platform: "wasm" | "node", shim, tools}. Prints one JSON line:
// {ok, errors, builtins (Node built-ins the plugin imports), hosts (http(s) hosts named in the
// plugin's code and dependencies, comments removed), inputs}.
import { readFileSync, realpathSync } from "node:fs";
import { builtinModules, createRequire } from "node:module";
import path from "node:path";

const job = JSON.parse(process.argv[2]);
const require = createRequire(path.join(job.tools, "package.json"));
const esbuild = require("esbuild");

const builtins = new Set();
const builtinNames = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));
const sdk = path.join(job.shim, "sdk.js");

const wasm = job.platform === "wasm";
const astridPlugin = {
  name: "astrid-openclaw",
  setup(build) {
    build.onResolve({ filter: /^openclaw(\/.*)?$/ }, () => ({ path: sdk }));
    // Under Node the shim's web APIs are Node's own: api.js gets node-env.js instead.
    if (!wasm) {
      build.onResolve({ filter: /^\.\/web\.js$/ }, (args) =>
        args.importer.startsWith(job.shim) ? { path: path.join(job.shim, "node-env.js") } : undefined,
      );
    }
    build.onResolve({ filter: /^core-js-pure\// }, (args) => ({ path: require.resolve(args.path) }));
    build.onResolve({ filter: /^[a-z_:/]+$/ }, (args) => {
      if (!builtinNames.has(args.path)) return undefined;
      builtins.add(args.path.replace(/^node:/, ""));
      return { path: args.path, external: true };
    });
  },
};

let result;
try {
  result = await esbuild.build({
    entryPoints: [job.entry],
    outfile: job.outfile,
    bundle: true,
    format: wasm ? "iife" : "esm",
    platform: wasm ? "browser" : "node",
    target: wasm ? "es2022" : "node20",
    mainFields: wasm ? ["browser", "module", "main"] : ["module", "main"],
    conditions: wasm ? ["browser", "import", "default"] : ["node", "import", "default"],
    charset: "utf8",
    legalComments: "none",
    // CommonJS dependencies inside an ES module bundle still call require() for built-ins.
    banner: wasm ? {} : { js: 'import { createRequire as __astridRequire } from "node:module"; const require = __astridRequire(import.meta.url);' },
    metafile: true,
    logLevel: "silent",
    plugins: [astridPlugin],
  });
} catch (err) {
  const errors = (err.errors ?? [{ text: String(err) }]).map(
    (e) => `${e.location ? `${e.location.file}:${e.location.line}: ` : ""}${e.text}`,
  );
  console.log(JSON.stringify({ ok: false, errors, builtins: [...builtins], hosts: [], inputs: [] }));
  process.exit(0);
}

const hosts = new Set();
const inputs = Object.keys(result.metafile.inputs).filter(
  (p) => !path.resolve(p).startsWith(job.shim + path.sep) && !realpathSync(path.resolve(p)).startsWith(realpathSync(job.tools) + path.sep),
);
for (const input of inputs) {
  const file = path.resolve(input);
  let code = readFileSync(file, "utf8");
  const loader = { ".ts": "ts", ".mts": "ts", ".cts": "ts", ".tsx": "tsx", ".jsx": "jsx", ".json": "json" }[path.extname(file)] ?? "js";
  try {
    code = esbuild.transformSync(code, { loader, minifyWhitespace: true, legalComments: "none" }).code;
  } catch {
    // keep the raw text: a host named in it is still a host
  }
  for (const m of code.matchAll(/\bhttps?:\/\/([A-Za-z0-9.-]+|\[[0-9a-fA-F:]+\])/g)) {
    hosts.add(m[1].toLowerCase().replace(/\.$/, ""));
  }
}
console.log(JSON.stringify({ ok: true, errors: [], builtins: [...builtins].sort(), hosts: [...hosts].sort(), inputs }));
