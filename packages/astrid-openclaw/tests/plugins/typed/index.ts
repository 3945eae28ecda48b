// A tool plugin with an npm dependency (TypeBox schemas, as most published plugins write them)
// and the `openclaw` peer dependency the real SDK import comes from.
import { Type } from "@sinclair/typebox";
import { Value } from "@sinclair/typebox/value";
import { definePluginEntry } from "openclaw/plugin-sdk/plugin-entry";

const Params = Type.Object({
  a: Type.Number({ description: "first" }),
  b: Type.Number({ description: "second" }),
  op: Type.Optional(Type.Union([Type.Literal("add"), Type.Literal("mul")])),
});

export default definePluginEntry({
  id: "typed",
  name: "Typed",
  description: "TypeBox schemas from an npm dependency",
  register(api: any) {
    api.registerTool({
      name: "calc",
      description: "Add or multiply two numbers",
      parameters: Params,
      async execute(_id: string, params: unknown) {
        if (!Value.Check(Params, params)) throw new Error("invalid parameters");
        const p = params as { a: number; b: number; op?: "add" | "mul" };
        return { content: [{ type: "text", text: String(p.op === "mul" ? p.a * p.b : p.a + p.b) }] };
      },
    });
  },
});
