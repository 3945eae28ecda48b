// CommonJS with {activate(api)}.
module.exports = {
  activate(api) {
    api.registerTool({ name: "ping", description: "pong", parameters: { type: "object" }, execute: async () => "pong" });
  },
};
