// The OpenClaw plugin API, as far as a sandboxed capsule can honour it, and the entry points
// the engine (engine.c in WASM, node-adapter.js under Node) calls.
//
// Forms accepted: `export default definePluginEntry({id, register(api)})`, a plain object with
// `register(api)` or `activate(api)`, `export default function register(api)`, and the same as
// named exports `register` / `activate`. Tools: `api.registerTool({name, description,
// parameters, execute(toolCallId, params, signal, onUpdate)}, opts)`, the legacy `handler` /
// `run(params, ctx)` shapes, `registerTool(name, {description, parameters}, handler)`, and
// factories `(ctx) => tool | tool[] | null`. Hooks: `api.on(name, handler)` and
// `api.registerHook(name(s), handler)`.
import { host, log, state } from "./web.js";

const tools = [];
const hooks = [];
const unsupported = [];
const warnings = [];

// OpenClaw hook names -> the Astrid interceptor events that carry them.
const HOOK_EVENTS = {
  before_tool_call: "BeforeToolCall",
  after_tool_call: "AfterToolCall",
  message_received: "UserPrompt",
  before_agent_start: "UserPrompt",
  before_prompt_build: "UserPrompt",
  session_start: "SessionStart",
  session_end: "SessionEnd",
};

let pluginConfig = null;
let configDefaults = {};
function readPluginConfig() {
  // While loading at build time (Wizer) no host call exists: the schema's defaults, which are
  // also what [config] plugin_config holds unless the user edits it.
  if (state.loading) return configDefaults;
  if (pluginConfig === null) {
    let raw = null;
    try {
      raw = host("get_config", { key: "plugin_config" }).value;
    } catch {
      raw = null;
    }
    pluginConfig = raw ? JSON.parse(raw) : {};
  }
  return pluginConfig;
}

function toolShape(tool, legacyHandler) {
  if (!tool || typeof tool !== "object") return null;
  const run = tool.execute ?? legacyHandler ?? tool.handler ?? tool.run;
  if (typeof run !== "function") return null;
  return {
    name: String(tool.name),
    description: String(tool.description ?? tool.label ?? ""),
    parameters: tool.parameters ?? tool.inputSchema ?? tool.schema ?? { type: "object" },
    // execute(toolCallId, params, signal, onUpdate); the older forms take (params, ctx).
    call: tool.execute
      ? (id, params, signal) => tool.execute.call(tool, id, params, signal, () => {})
      : (id, params) => run.call(tool, params, { toolCallId: id }),
  };
}

function addTools(result, optional) {
  for (const t of Array.isArray(result) ? result : [result]) {
    const shaped = toolShape(t);
    if (shaped) tools.push({ ...shaped, optional: !!optional });
    else if (t != null) warnings.push(`a registered tool has no execute function: ${String(t?.name)}`);
  }
}

function registerTool(tool, second, third) {
  if (typeof tool === "string") {
    // legacy: registerTool(name, {description, parameters}, handler)
    const def = typeof second === "object" && second ? second : { description: String(second ?? "") };
    const shaped = toolShape({ name: tool, ...def }, third ?? def.handler ?? def.execute);
    if (shaped) tools.push({ ...shaped, optional: false });
    return;
  }
  const opts = second ?? {};
  if (typeof tool === "function") {
    // A tool factory: OpenClaw calls it per agent context; a capsule has one context.
    addTools(tool({ config: {}, workspaceDir: ".", agentId: "astrid", sandboxed: true }), opts.optional);
    return;
  }
  addTools(tool, opts.optional);
}

function on(name, handler, opts) {
  const names = Array.isArray(name) ? name : [name];
  for (const n of names) {
    if (!HOOK_EVENTS[n]) {
      warnings.push(`hook ${n} has no Astrid event and never fires in a capsule`);
      continue;
    }
    hooks.push({ name: n, event: HOOK_EVENTS[n], handler, priority: opts?.priority ?? 0 });
  }
}

function unsupportedRegistration(kind) {
  return (item) => {
    unsupported.push({ kind, id: String(item?.id ?? item?.name ?? "") });
  };
}

const logger = {
  debug: (...a) => log("debug", a),
  info: (...a) => log("info", a),
  warn: (...a) => log("warn", a),
  error: (...a) => log("error", a),
};

function makeApi(meta) {
  return {
    id: meta.id,
    name: meta.name ?? meta.id,
    version: meta.version ?? "",
    description: meta.description ?? "",
    source: "astrid-capsule",
    registrationMode: "full",
    config: {},
    get pluginConfig() {
      return readPluginConfig();
    },
    logger,
    runtime: { version: "astrid", logging: { getChildLogger: () => logger } },
    resolvePath: (p) => String(p),
    registerTool,
    on,
    registerHook: (events, handler, opts) => on(events, handler, opts),
    // Needs a Node process or a host Astrid does not give a capsule: Tier 2 (Node) or unsupported.
    registerChannel: unsupportedRegistration("channel"),
    registerProvider: unsupportedRegistration("provider"),
    registerService: unsupportedRegistration("service"),
    registerHttpRoute: unsupportedRegistration("httpRoute"),
    registerHttpHandler: unsupportedRegistration("httpRoute"),
    registerGatewayMethod: unsupportedRegistration("gatewayMethod"),
    registerCli: unsupportedRegistration("cli"),
    registerCommand: unsupportedRegistration("command"),
    registerContextEngine: unsupportedRegistration("contextEngine"),
    registerMemoryEmbeddingProvider: unsupportedRegistration("provider"),
  };
}

function entryOf(mod) {
  const candidates = [mod?.default, mod?.default?.default, mod];
  for (const c of candidates) {
    if (typeof c === "function") return { register: c };
    if (c && typeof c === "object" && (typeof c.register === "function" || typeof c.activate === "function")) return c;
  }
  return null;
}

export async function install(mod, meta) {
  configDefaults = meta.configDefaults ?? {};
  const entry = entryOf(mod);
  if (!entry) throw new Error("the plugin exports no register(api), activate(api) or definePluginEntry({...})");
  const api = makeApi({ ...meta, ...(entry.id ? { id: entry.id } : {}) });
  const register = entry.register ?? entry.activate;
  await register.call(entry, api);
}

// ---------------------------------------------------------------- entry points

function resultText(result) {
  if (result == null) return "";
  if (typeof result === "string") return result;
  if (Array.isArray(result?.content)) {
    const parts = result.content.map((c) =>
      c?.type === "text" ? String(c.text ?? "") : `[${c?.type ?? "content"}${c?.mimeType ? `: ${c.mimeType}` : ""}]`,
    );
    if (parts.length) return parts.join("\n");
    if (result.details !== undefined) return JSON.stringify(result.details);
  }
  return JSON.stringify(result);
}

let callCount = 0;
export async function callTool(index, input) {
  const tool = tools[index];
  if (!tool) throw new Error(`no tool number ${index}`);
  const params = input ? JSON.parse(input) : {};
  callCount += 1;
  return resultText(await tool.call(`astrid-${callCount}`, params, undefined));
}

export function describe(meta) {
  return JSON.stringify({
    plugin: meta,
    tools: tools.map((t, index) => ({
      index,
      name: t.name,
      description: t.description,
      parameters: JSON.parse(JSON.stringify(t.parameters)),
      optional: t.optional,
    })),
    hooks: [...new Set(hooks.map((h) => h.event))],
    hookNames: hooks.map((h) => h.name),
    unsupported,
    warnings,
    logs: state.logs,
  });
}

export async function deliverHook(event, input) {
  const payload = input ? JSON.parse(input) : {};
  const handlers = hooks.filter((h) => h.event === event).sort((a, b) => b.priority - a.priority);
  const notes = [];
  for (const h of handlers) {
    let answer;
    if (event === "BeforeToolCall") {
      answer = await h.handler({ toolName: payload.tool, params: payload.arguments ?? {} }, { sessionKey: payload.session_id });
      if (answer?.block) return JSON.stringify({ decision: "deny", reason: String(answer.blockReason ?? "blocked by the plugin") });
      if (answer?.params) notes.push(`${h.name} asked to rewrite the parameters; a capsule cannot, ignored`);
    } else if (event === "AfterToolCall") {
      await h.handler({ toolName: payload.tool, params: payload.arguments ?? {}, result: payload.output, error: payload.ok === false ? "failed" : undefined }, { sessionKey: payload.session_id });
    } else if (event === "UserPrompt") {
      answer = await h.handler({ prompt: payload.prompt ?? "", content: payload.prompt ?? "", messages: [] }, { sessionKey: payload.session_id });
      if (answer?.prependContext || answer?.systemPrompt) notes.push(`${h.name} asked to add context; a capsule cannot, ignored`);
    } else {
      await h.handler({ sessionId: payload.session_id }, { sessionKey: payload.session_id });
    }
  }
  return JSON.stringify(notes.length ? { decision: "continue", annotation: notes.join("; ") } : {});
}
