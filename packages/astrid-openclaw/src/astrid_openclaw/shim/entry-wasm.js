// Bundle entry of a Tier 1 (WASM) plugin; the compiler substitutes the two __ASTRID_*__ names.
import "./web.js";
import { state } from "./web.js";
import { callTool, deliverHook, describe, install } from "./api.js";
import * as plugin from "__ASTRID_PLUGIN__";

const META = __ASTRID_META__;
globalThis.__astrid_tool = (index, input) => callTool(index, input);
globalThis.__astrid_describe = () => describe({ ...META, loadError: state.loadError ?? null });
globalThis.__astrid_hook = (event, input) => deliverHook(event, input);
install(plugin, META).then(
  () => {
    state.loading = false;
  },
  (err) => {
    // QuickJS's stack has no message line (V8's does): both, message first.
    state.loadError = `${String(err)}${err?.stack ? `\n${err.stack}` : ""}`;
    state.loading = false;
  },
);
