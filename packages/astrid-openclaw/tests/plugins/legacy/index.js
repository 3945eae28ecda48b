// The older forms: `export default function register(api)`, registerTool(name, def, handler),
// a {handler} tool, a factory returning several tools, and one returning nothing.
export default function register(api) {
  api.registerTool("shout", { description: "Upper-case the text", parameters: { type: "object", properties: { text: { type: "string" } } } }, (params) =>
    String(params.text).toUpperCase(),
  );
  api.registerTool({ name: "old_handler", description: "handler form", parameters: { type: "object" }, handler: async (params) => ({ content: [{ type: "text", text: `handled ${params.n}` }] }) });
  api.registerTool(() => [
    { name: "pair_a", description: "a", parameters: { type: "object" }, execute: async () => "A" },
    { name: "pair_b", description: "b", parameters: { type: "object" }, execute: async () => ({ content: [{ type: "image", mimeType: "image/png", data: "" }] }) },
  ]);
  api.registerTool(() => null);
}
