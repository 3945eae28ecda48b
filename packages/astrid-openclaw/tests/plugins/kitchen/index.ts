// Edge cases of the OpenClaw plugin API in one plugin (definePluginEntry form, TypeScript).
import { definePluginEntry, jsonResult } from "openclaw/plugin-sdk/plugin-entry";

const DOCS = "https://example.com/kitchen"; // the one host this plugin names
const randomAtLoad: number = Math.random(); // frozen in the Wizer snapshot, on purpose
const text = (t: string) => ({ content: [{ type: "text" as const, text: t }] });
const obj = (properties: Record<string, unknown> = {}) => ({ type: "object", properties });

export default definePluginEntry({
  id: "kitchen",
  name: "Kitchen sink",
  description: "edge cases",
  register(api: any) {
    api.logger.info("kitchen registering");
    api.registerTool({
      name: "echo",
      description: "Echo the text after a timer",
      parameters: obj({ text: { type: "string" } }),
      async execute(_id: string, params: { text: string }) {
        await new Promise((r) => setTimeout(r, 5));
        return text(`echo:${params.text}`);
      },
    });
    api.registerTool({
      name: "web_apis",
      description: "Exercise URL, TextEncoder, AbortSignal, timers, crypto",
      parameters: obj(),
      async execute() {
        const u = new URL("/a/b?x=1#f", DOCS);
        u.searchParams.set("q", "a b&c");
        const bytes = new TextEncoder().encode("héllo ✓ 𝄞");
        const back = new TextDecoder().decode(bytes);
        const signal = AbortSignal.timeout(10);
        let aborted = false;
        signal.addEventListener("abort", () => (aborted = true), { once: true });
        const order: number[] = [];
        setTimeout(() => order.push(3), 30);
        setTimeout(() => order.push(1), 1);
        const iv = setInterval(() => order.push(2), 12);
        await new Promise((r) => setTimeout(r, 40));
        clearInterval(iv);
        const params = new URLSearchParams({ a: "1", b: "x y" });
        return jsonResult({
          href: u.href,
          search: params.toString(),
          bytes: bytes.length,
          back,
          aborted,
          reason: (signal.reason as any)?.name,
          order,
          uuid: crypto.randomUUID().length,
          envKeys: Object.keys(process.env).length,
        });
      },
    });
    api.registerTool({
      name: "random",
      description: "Math.random at load time and now",
      parameters: obj(),
      execute: async () => jsonResult({ atLoad: randomAtLoad, now: Math.random() }),
    });
    api.registerTool({
      name: "never_settles",
      description: "A promise nothing will ever settle",
      parameters: obj(),
      execute: () => new Promise(() => {}),
    });
    api.registerTool({
      name: "spin",
      description: "An infinite loop",
      parameters: obj(),
      execute: () => {
        for (;;) {}
      },
    });
    api.registerTool({
      name: "hog",
      description: "Allocates until memory runs out",
      parameters: obj(),
      execute: () => {
        const keep: number[][] = [];
        for (;;) keep.push(new Array(1 << 20).fill(7));
      },
    });
    api.registerTool({
      name: "fetch_url",
      description: "GET a URL with fetch",
      parameters: obj({ url: { type: "string" } }),
      async execute(_id: string, params: { url: string }) {
        try {
          const r = await fetch(params.url, { headers: { accept: "text/plain" } });
          return text(`${r.status} ${r.ok} ${await r.text()}`);
        } catch (err: any) {
          return text(`fetch error: ${err.message}`);
        }
      },
    });
    api.registerTool({
      name: "raw_host",
      description: "Call a host function directly, bypassing the shim",
      parameters: obj({ fn: { type: "string" }, request: { type: "object" } }),
      execute: (_id: string, p: { fn: string; request: object }) =>
        text((globalThis as any).__astrid_host(p.fn, JSON.stringify(p.request))),
    });
    api.registerTool({
      name: "config",
      description: "api.pluginConfig",
      parameters: obj(),
      execute: async () => jsonResult(api.pluginConfig),
    });
    api.registerTool({
      name: "fails",
      description: "Throws",
      parameters: obj(),
      execute: async () => {
        throw new Error("kitchen failure on purpose");
      },
    });
    api.registerTool((ctx: any) => ({
      name: "from_factory",
      description: "Made by a tool factory",
      parameters: obj(),
      execute: async () => text(`factory ok (${ctx.agentId})`),
    }));
    api.on("before_tool_call", (event: any) =>
      event.params?.text === "forbidden" ? { block: true, blockReason: "kitchen says no" } : undefined,
    );
    api.on("session_start", () => {});
  },
});
