// What plugins import from `openclaw/plugin-sdk/...`: the bundler maps every such import here
// (plugins list `openclaw` as a peer dependency; the real package is never bundled).
export function definePluginEntry(entry) {
  return entry;
}
export const definePlugin = definePluginEntry;
export function emptyPluginConfigSchema() {
  return { type: "object", additionalProperties: false, properties: {} };
}
export function jsonResult(payload) {
  return { content: [{ type: "text", text: JSON.stringify(payload, null, 2) }], details: payload };
}
export function textResult(text, details) {
  return { content: [{ type: "text", text: String(text) }], details };
}
function readParam(params, key, options, kind) {
  const value = params?.[key];
  if (value === undefined || value === null || value === "") {
    if (options?.required) throw new Error(`${options?.label ?? key} required`);
    return undefined;
  }
  if (kind === "number") {
    const n = typeof value === "number" ? value : Number(value);
    if (!Number.isFinite(n)) throw new Error(`${options?.label ?? key} must be a number`);
    return options?.integer ? Math.trunc(n) : n;
  }
  return options?.trim === false ? String(value) : String(value).trim();
}
export const readStringParam = (p, k, o) => readParam(p, k, o, "string");
export const readNumberParam = (p, k, o) => readParam(p, k, o, "number");
export default { definePluginEntry, emptyPluginConfigSchema, jsonResult };
