// Tier 2 (Node): what web.js is to the WASM engine. The bundler maps api.js's "./web.js" here.
//
// The process runs inside Astrid's MCP sandbox (astrid-workspace): no route out but the egress
// proxy, which admits only the capsule's granted hosts. Node's fetch ignores HTTP(S)_PROXY, so
// fetch is replaced by one that goes through the proxy (CONNECT for https). stdout belongs to
// the MCP protocol: every console method writes to stderr.
import http from "node:http";
import https from "node:https";
import tls from "node:tls";

export const state = { loading: false, logs: [] };

export class HostError extends Error {}

export function host(fn) {
  if (fn === "get_config") return { value: process.env.ASTRID_OPENCLAW_CONFIG ?? null };
  throw new HostError(`${fn}: not available to a Node plugin (use Node's own APIs)`);
}

export function log(level, args) {
  const text = args.map((a) => (typeof a === "string" ? a : a instanceof Error ? a.message : JSON.stringify(a))).join(" ");
  process.stderr.write(`[${level}] ${text}\n`);
}

for (const level of ["log", "info", "debug", "warn", "error", "trace"]) {
  console[level] = (...a) => log(level === "log" ? "info" : level, a);
}

function proxyFor(url) {
  const raw = url.protocol === "https:" ? process.env.HTTPS_PROXY || process.env.https_proxy : process.env.HTTP_PROXY || process.env.http_proxy;
  return raw ? new URL(raw) : null;
}

function tunnel(proxy, target) {
  return new Promise((resolve, reject) => {
    const port = target.port || 443;
    const req = http.request({ host: proxy.hostname, port: proxy.port || 80, method: "CONNECT", path: `${target.hostname}:${port}` });
    req.once("connect", (res, socket) => {
      if (res.statusCode !== 200) {
        socket.destroy();
        reject(new TypeError(`fetch failed: the proxy refused ${target.hostname} (${res.statusCode})`));
        return;
      }
      resolve(tls.connect({ socket, servername: target.hostname }));
    });
    req.once("error", reject);
    req.end();
  });
}

async function proxiedFetch(input, init = {}) {
  const url = new URL(typeof input === "string" || input instanceof URL ? String(input) : input.url);
  const proxy = proxyFor(url);
  if (!proxy) return nativeFetch(input, init);
  const method = String(init.method ?? "GET").toUpperCase();
  const headers = Object.fromEntries(new Headers(init.headers).entries());
  const body = init.body == null ? undefined : typeof init.body === "string" ? init.body : Buffer.from(await new Response(init.body).arrayBuffer());
  if (init.signal?.aborted) throw init.signal.reason;
  const options =
    url.protocol === "https:"
      ? { method, headers, host: url.hostname, path: url.pathname + url.search, createConnection: () => socket }
      : { method, headers: { ...headers, host: url.host }, host: proxy.hostname, port: proxy.port || 80, path: url.href };
  const socket = url.protocol === "https:" ? await tunnel(proxy, url) : undefined;
  return new Promise((resolve, reject) => {
    const req = (url.protocol === "https:" ? https : http).request(options, (res) => {
      const chunks = [];
      res.on("data", (c) => chunks.push(c));
      res.on("end", () => {
        const h = new Headers();
        for (const [k, v] of Object.entries(res.headers)) if (v !== undefined) h.set(k, Array.isArray(v) ? v.join(", ") : String(v));
        const status = res.statusCode ?? 502;
        const payload = [101, 204, 205, 304].includes(status) ? null : Buffer.concat(chunks);
        resolve(new Response(payload, { status, statusText: res.statusMessage, headers: h }));
      });
      res.on("error", reject);
    });
    req.on("error", (err) => reject(Object.assign(new TypeError(`fetch failed: ${err.message}`), { cause: err })));
    init.signal?.addEventListener?.("abort", () => req.destroy(init.signal.reason), { once: true });
    if (body !== undefined) req.write(body);
    req.end();
  });
}

const nativeFetch = globalThis.fetch;
globalThis.fetch = proxiedFetch;
