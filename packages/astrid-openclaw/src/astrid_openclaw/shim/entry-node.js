// Bundle entry of a Tier 2 (Node) plugin: the plugin behind a minimal MCP server on stdio
// (JSON-RPC 2.0, one message per line): initialize, ping, tools/list, tools/call.
// The compiler substitutes the two __ASTRID_*__ names.
import "./node-env.js";
import { callTool, describe, install } from "./api.js";
import * as plugin from "__ASTRID_PLUGIN__";

const META = __ASTRID_META__;
const ready = install(plugin, META);
let buffer = "";

function send(message) {
  process.stdout.write(`${JSON.stringify({ jsonrpc: "2.0", ...message })}\n`);
}

async function handle(message) {
  const { id, method, params } = message;
  if (id === undefined) return; // a notification: nothing to answer
  try {
    await ready;
    const tools = JSON.parse(describe(META)).tools;
    if (method === "initialize") {
      send({
        id,
        result: {
          protocolVersion: params?.protocolVersion ?? "2025-06-18",
          capabilities: { tools: {} },
          serverInfo: { name: `openclaw-${META.id}`, version: META.version || "0.0.0" },
        },
      });
    } else if (method === "ping") {
      send({ id, result: {} });
    } else if (method === "tools/list") {
      send({ id, result: { tools: tools.map((t) => ({ name: t.name, description: t.description, inputSchema: t.parameters })) } });
    } else if (method === "tools/call") {
      const tool = tools.find((t) => t.name === params?.name);
      if (!tool) {
        send({ id, error: { code: -32602, message: `unknown tool ${params?.name}` } });
        return;
      }
      try {
        const text = await callTool(tool.index, JSON.stringify(params?.arguments ?? {}));
        send({ id, result: { content: [{ type: "text", text }] } });
      } catch (err) {
        send({ id, result: { content: [{ type: "text", text: String(err?.message ?? err) }], isError: true } });
      }
    } else {
      send({ id, error: { code: -32601, message: `method not found: ${method}` } });
    }
  } catch (err) {
    send({ id, error: { code: -32603, message: String(err?.message ?? err) } });
  }
}

process.stdin.setEncoding("utf8");
process.stdin.on("data", (chunk) => {
  buffer += chunk;
  let newline;
  while ((newline = buffer.indexOf("\n")) >= 0) {
    const line = buffer.slice(0, newline).trim();
    buffer = buffer.slice(newline + 1);
    if (!line) continue;
    let message;
    try {
      message = JSON.parse(line);
    } catch {
      send({ id: null, error: { code: -32700, message: "parse error" } });
      continue;
    }
    handle(message);
  }
});
process.stdin.on("end", () => process.exit(0));
