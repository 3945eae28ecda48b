// The web APIs OpenClaw plugins use, for QuickJS-ng inside an Astrid capsule.
//
// fetch goes through Astrid's `http_request` host function: the host checks the capsule's
// declared hosts, private addresses and the session's interceptor (approval, audit) before any
// byte leaves. Timers run on a virtual clock driven by the engine (engine.c): a timer fires
// when nothing else can happen, so an `AbortSignal.timeout` never fires early while a host call
// is answering, and a promise nothing can settle is reported at once instead of hanging.
import URLImpl from "core-js-pure/actual/url/index.js";
import URLSearchParamsImpl from "core-js-pure/actual/url-search-params/index.js";

const G = globalThis;
export const state = { loading: true, logs: [] };

// ---------------------------------------------------------------- host calls

export class HostError extends Error {
  constructor(fn, message) {
    super(`${fn}: ${message}`);
    this.name = "HostError";
    this.function = fn;
  }
}

export function host(fn, request) {
  if (state.loading) {
    throw new HostError(fn, "host functions are not available while the plugin is loaded at build time");
  }
  const reply = JSON.parse(G.__astrid_host(fn, JSON.stringify(request)));
  if (!reply.ok) throw new HostError(fn, reply.error);
  return reply.value;
}

// ---------------------------------------------------------------- randomness

let seed = [0x9e3779b9, 0x243f6a88, 0xb7e15162, 0x6a09e667];
function sfc32() {
  let [a, b, c, d] = seed;
  const t = (((a + b) | 0) + d) | 0;
  d = (d + 1) | 0;
  a = b ^ (b >>> 9);
  b = (c + (c << 3)) | 0;
  c = (c << 21) | (c >>> 11);
  c = (c + t) | 0;
  seed = [a, b, c, d];
  return (t >>> 0) / 4294967296;
}
// Called by the engine once per new instance, before its first call: the pre-initialized
// snapshot must not hand every instance the same sequence.
G.__astrid_reseed = () => {
  seed = G.__astrid_entropy();
  for (let i = 0; i < 12; i++) sfc32();
};
Math.random = sfc32;

const cryptoImpl = {
  getRandomValues(array) {
    const bytes = new Uint8Array(array.buffer, array.byteOffset, array.byteLength);
    for (let i = 0; i < bytes.length; i += 16) {
      const words = G.__astrid_entropy();
      for (let j = 0; j < 16 && i + j < bytes.length; j++) {
        bytes[i + j] = (words[j >> 2] >>> ((j & 3) * 8)) & 0xff;
      }
    }
    return array;
  },
  randomUUID() {
    const b = cryptoImpl.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    const h = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
    return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
  },
};

// ---------------------------------------------------------------- timers (virtual clock)

const timers = new Map();
let nextTimer = 1;
let skew = 0; // ms the virtual clock ran ahead of the real one
const now = () => Date.now() + skew;

class Timeout {
  constructor(id) {
    this.id = id;
  }
  ref() {
    return this;
  }
  unref() {
    return this;
  }
  hasRef() {
    return true;
  }
  refresh() {
    return this;
  }
  [Symbol.toPrimitive]() {
    return this.id;
  }
}

function addTimer(fn, ms, args, repeat) {
  if (typeof fn !== "function") throw new TypeError("the callback must be a function");
  const delay = Math.max(0, Number(ms) || 0);
  const id = nextTimer++;
  timers.set(id, { fn, args, at: now() + delay, every: repeat ? Math.max(1, delay) : 0 });
  return new Timeout(id);
}
function clearTimer(handle) {
  if (handle != null) timers.delete(typeof handle === "object" ? handle.id : Number(handle));
}

// The engine calls this when no job is pending and the call's promise is still unsettled.
G.__astrid_run_timer = () => {
  let pick = null;
  for (const [id, t] of timers) if (!pick || t.at < pick[1].at) pick = [id, t];
  if (!pick) return false;
  const [id, t] = pick;
  const wait = t.at - now();
  if (wait > 0) skew += wait;
  if (t.every) t.at += t.every;
  else timers.delete(id);
  t.fn(...t.args);
  return true;
};

// ---------------------------------------------------------------- events, abort

class Event {
  constructor(type, init = {}) {
    this.type = String(type);
    this.cancelable = !!init.cancelable;
    this.defaultPrevented = false;
    this.timeStamp = now();
  }
  preventDefault() {
    if (this.cancelable) this.defaultPrevented = true;
  }
  stopPropagation() {}
  stopImmediatePropagation() {}
}

class EventTarget {
  #listeners = new Map();
  addEventListener(type, listener, options) {
    if (!listener) return;
    const once = typeof options === "object" && options?.once;
    const list = this.#listeners.get(type) ?? [];
    if (!list.some((l) => l.listener === listener)) list.push({ listener, once });
    this.#listeners.set(type, list);
    options?.signal?.addEventListener?.("abort", () => this.removeEventListener(type, listener));
  }
  removeEventListener(type, listener) {
    const list = this.#listeners.get(type);
    if (list) this.#listeners.set(type, list.filter((l) => l.listener !== listener));
  }
  dispatchEvent(event) {
    const handler = this[`on${event.type}`];
    if (typeof handler === "function") handler.call(this, event);
    for (const l of [...(this.#listeners.get(event.type) ?? [])]) {
      if (l.once) this.removeEventListener(event.type, l.listener);
      if (typeof l.listener === "function") l.listener.call(this, event);
      else l.listener.handleEvent(event);
    }
    return !event.defaultPrevented;
  }
}

function domException(message, name) {
  if (typeof G.DOMException === "function") return new G.DOMException(message, name);
  const e = new Error(message);
  e.name = name;
  return e;
}

class AbortSignal extends EventTarget {
  aborted = false;
  reason = undefined;
  onabort = null;
  throwIfAborted() {
    if (this.aborted) throw this.reason;
  }
  static abort(reason) {
    const c = new AbortController();
    c.abort(reason);
    return c.signal;
  }
  static timeout(ms) {
    const c = new AbortController();
    addTimer(() => c.abort(domException("The operation timed out.", "TimeoutError")), ms, [], false);
    return c.signal;
  }
  static any(signals) {
    const c = new AbortController();
    for (const s of signals) {
      if (s.aborted) {
        c.abort(s.reason);
        break;
      }
      s.addEventListener("abort", () => c.abort(s.reason), { once: true });
    }
    return c.signal;
  }
}

class AbortController {
  signal = new AbortSignal();
  abort(reason) {
    const s = this.signal;
    if (s.aborted) return;
    s.aborted = true;
    s.reason = reason === undefined ? domException("This operation was aborted", "AbortError") : reason;
    s.dispatchEvent(new Event("abort"));
  }
}

// ---------------------------------------------------------------- text

class TextEncoder {
  get encoding() {
    return "utf-8";
  }
  encode(input = "") {
    const s = String(input);
    const out = [];
    for (let i = 0; i < s.length; i++) {
      let c = s.charCodeAt(i);
      if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length) {
        const d = s.charCodeAt(i + 1);
        if (d >= 0xdc00 && d < 0xe000) {
          c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
          i++;
        } else c = 0xfffd;
      } else if (c >= 0xd800 && c < 0xe000) c = 0xfffd;
      if (c < 0x80) out.push(c);
      else if (c < 0x800) out.push(0xc0 | (c >> 6), 0x80 | (c & 63));
      else if (c < 0x10000) out.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
      else out.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 63), 0x80 | ((c >> 6) & 63), 0x80 | (c & 63));
    }
    return new Uint8Array(out);
  }
}

class TextDecoder {
  constructor(label = "utf-8") {
    if (!/^utf-?8$/i.test(label)) throw new RangeError(`TextDecoder: only utf-8 is supported, not ${label}`);
  }
  get encoding() {
    return "utf-8";
  }
  decode(input) {
    if (input == null) return "";
    const b = input instanceof Uint8Array ? input : new Uint8Array(input.buffer ?? input, input.byteOffset ?? 0, input.byteLength);
    let s = "";
    for (let i = 0; i < b.length; ) {
      const c = b[i];
      let cp = 0xfffd;
      let n = 1;
      if (c < 0x80) cp = c;
      else if (c >= 0xc2 && c < 0xe0 && (b[i + 1] & 0xc0) === 0x80) {
        cp = ((c & 31) << 6) | (b[i + 1] & 63);
        n = 2;
      } else if (c >= 0xe0 && c < 0xf0 && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80) {
        cp = ((c & 15) << 12) | ((b[i + 1] & 63) << 6) | (b[i + 2] & 63);
        n = 3;
        if (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000)) cp = 0xfffd;
      } else if (c >= 0xf0 && c < 0xf5 && (b[i + 1] & 0xc0) === 0x80 && (b[i + 2] & 0xc0) === 0x80 && (b[i + 3] & 0xc0) === 0x80) {
        cp = ((c & 7) << 18) | ((b[i + 1] & 63) << 12) | ((b[i + 2] & 63) << 6) | (b[i + 3] & 63);
        n = 4;
        if (cp < 0x10000 || cp > 0x10ffff) cp = 0xfffd;
      }
      s += String.fromCodePoint(cp);
      i += n;
    }
    return s;
  }
}

// ---------------------------------------------------------------- fetch

class Headers {
  #map = new Map();
  constructor(init) {
    if (init instanceof Headers) init.forEach((v, k) => this.append(k, v));
    else if (Array.isArray(init)) for (const [k, v] of init) this.append(k, v);
    else if (init) for (const k of Object.keys(init)) this.append(k, init[k]);
  }
  append(k, v) {
    const key = String(k).toLowerCase();
    const old = this.#map.get(key);
    this.#map.set(key, old === undefined ? String(v) : `${old}, ${v}`);
  }
  set(k, v) {
    this.#map.set(String(k).toLowerCase(), String(v));
  }
  get(k) {
    return this.#map.get(String(k).toLowerCase()) ?? null;
  }
  has(k) {
    return this.#map.has(String(k).toLowerCase());
  }
  delete(k) {
    this.#map.delete(String(k).toLowerCase());
  }
  forEach(fn) {
    for (const [k, v] of this.#map) fn(v, k, this);
  }
  *entries() {
    yield* this.#map.entries();
  }
  *keys() {
    yield* this.#map.keys();
  }
  *values() {
    yield* this.#map.values();
  }
  [Symbol.iterator]() {
    return this.entries();
  }
}

class Response {
  constructor(body = null, init = {}) {
    this._body = body == null ? "" : String(body);
    this.status = init.status ?? 200;
    this.statusText = init.statusText ?? "";
    this.headers = new Headers(init.headers);
    this.url = init.url ?? "";
    this.redirected = false;
    this.type = "basic";
    this.bodyUsed = false;
  }
  get ok() {
    return this.status >= 200 && this.status < 300;
  }
  get body() {
    return null; // no streams: text(), json() and arrayBuffer() read the whole body
  }
  #take() {
    if (this.bodyUsed) throw new TypeError("Body has already been consumed.");
    this.bodyUsed = true;
    return this._body;
  }
  async text() {
    return this.#take();
  }
  async json() {
    return JSON.parse(this.#take());
  }
  async arrayBuffer() {
    return new TextEncoder().encode(this.#take()).buffer;
  }
  async bytes() {
    return new TextEncoder().encode(this.#take());
  }
  clone() {
    return new Response(this._body, { status: this.status, statusText: this.statusText, headers: this.headers, url: this.url });
  }
  static json(data, init = {}) {
    return new Response(JSON.stringify(data), { ...init, headers: { "content-type": "application/json", ...(init.headers ?? {}) } });
  }
}

function bodyText(body) {
  if (body == null) return undefined;
  if (typeof body === "string") return body;
  if (body instanceof URLSearchParamsImpl) return body.toString();
  if (body instanceof ArrayBuffer || ArrayBuffer.isView(body)) return new TextDecoder().decode(body);
  throw new TypeError("fetch: only string, URLSearchParams and byte bodies are supported in a capsule");
}

async function fetch(input, init = {}) {
  const url = typeof input === "string" ? input : input instanceof URLImpl ? input.href : String(input.url ?? input);
  const signal = init.signal ?? input?.signal;
  if (signal?.aborted) throw signal.reason;
  const request = { url, method: String(init.method ?? input?.method ?? "GET").toUpperCase() };
  const body = bodyText(init.body);
  if (body !== undefined) request.body = body;
  const headers = new Headers(init.headers);
  if ([...headers.keys()].length) request.headers = Object.fromEntries(headers.entries());
  let reply;
  try {
    reply = host("http_request", request);
  } catch (err) {
    const e = new TypeError(`fetch failed: ${err.message}`);
    e.cause = err;
    throw e;
  }
  if (signal?.aborted) throw signal.reason;
  return new Response(reply.body, { status: reply.status, headers: reply.headers, url });
}

// ---------------------------------------------------------------- logging, process

function format(args) {
  return args.map((a) => (typeof a === "string" ? a : a instanceof Error ? `${a.name}: ${a.message}` : safeJson(a))).join(" ");
}
function safeJson(value) {
  try {
    return JSON.stringify(value);
  } catch {
    return String(value);
  }
}
export function log(level, args) {
  const message = format(args).slice(0, 4000);
  if (state.loading) {
    state.logs.push({ level, message });
    return;
  }
  try {
    host("log", { level, message });
  } catch {
    // logging never fails a tool call
  }
}

const consoleImpl = {
  log: (...a) => log("info", a),
  info: (...a) => log("info", a),
  debug: (...a) => log("debug", a),
  warn: (...a) => log("warn", a),
  error: (...a) => log("error", a),
  trace: (...a) => log("debug", a),
};

function define(name, value) {
  if (G[name] === undefined) Object.defineProperty(G, name, { value, writable: true, configurable: true });
}

define("URL", URLImpl);
define("URLSearchParams", URLSearchParamsImpl);
define("TextEncoder", TextEncoder);
define("TextDecoder", TextDecoder);
define("Event", Event);
define("EventTarget", EventTarget);
define("AbortController", AbortController);
define("AbortSignal", AbortSignal);
define("Headers", Headers);
define("Response", Response);
define("fetch", fetch);
define("setTimeout", (fn, ms, ...args) => addTimer(fn, ms, args, false));
define("setInterval", (fn, ms, ...args) => addTimer(fn, ms, args, true));
define("setImmediate", (fn, ...args) => addTimer(fn, 0, args, false));
define("clearTimeout", clearTimer);
define("clearInterval", clearTimer);
define("clearImmediate", clearTimer);
define("crypto", cryptoImpl);
define("structuredClone", (v) => (v === undefined ? v : JSON.parse(JSON.stringify(v))));
define("global", G);
define("self", G);
G.console = consoleImpl;
// No host environment reaches a plugin: process.env is empty (configuration is api.pluginConfig).
define("process", {
  env: {},
  argv: [],
  platform: "wasi",
  version: "",
  versions: {},
  cwd: () => "/",
  nextTick: (fn, ...args) => queueMicrotask(() => fn(...args)),
  on() {},
  emitWarning() {},
});
