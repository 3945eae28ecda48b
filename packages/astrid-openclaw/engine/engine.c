/*
 * engine.c - QuickJS-ng as an Extism plugin that speaks Astrid's host functions.
 *
 * One engine serves every OpenClaw plugin: the plugin's bundled script (its code, its npm
 * dependencies and the OpenClaw API shim, made by astrid_openclaw's compiler) is loaded either
 * at build time by Wizer (export "wizer.initialize", reading /src/plugin.js) or at run time by
 * the export "load" (the script is the call's input), and the snapshot then holds a JS context
 * in which register(api) already ran.
 *
 * Exports (Extism ABI: int f(void), input and output through the Extism kernel):
 *   describe        -> JSON {tools, hooks, logs, errors} of what register(api) registered
 *   tool_0..tool_63 -> run the N-th registered tool with the input JSON as its params
 *   hook_<Event>    -> deliver an Astrid interceptor event to api.on(...) handlers
 * Globals the shim uses: __astrid_host(name, json) calls one of Astrid's 12 host functions
 * (the host authorizes it), __astrid_entropy() gives 4 random u32 from WASI random_get.
 *
 * The JS the plugin runs is asynchronous, host calls are not: a call drains the job queue and
 * fires timers (virtual time: the earliest timer fires when nothing else can happen) until the
 * returned promise settles; a promise nothing can settle any more is an error at once.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wasi/api.h>

#include "quickjs.h"

typedef uint64_t u64;

#define IMPORT(mod, name) __attribute__((import_module(mod), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

IMPORT("extism:host/env", "input_length") extern u64 extism_input_length(void);
IMPORT("extism:host/env", "input_load_u8") extern uint8_t extism_input_load_u8(u64);
IMPORT("extism:host/env", "input_load_u64") extern u64 extism_input_load_u64(u64);
IMPORT("extism:host/env", "alloc") extern u64 extism_alloc(u64);
IMPORT("extism:host/env", "length") extern u64 extism_length(u64);
IMPORT("extism:host/env", "load_u8") extern uint8_t extism_load_u8(u64);
IMPORT("extism:host/env", "load_u64") extern u64 extism_load_u64(u64);
IMPORT("extism:host/env", "store_u8") extern void extism_store_u8(u64, uint8_t);
IMPORT("extism:host/env", "store_u64") extern void extism_store_u64(u64, u64);
IMPORT("extism:host/env", "output_set") extern void extism_output_set(u64, u64);
IMPORT("extism:host/env", "error_set") extern void extism_error_set(u64);
IMPORT("extism:host/env", "free") extern void extism_free(u64);

#define HOST(name) IMPORT("astrid", #name) extern u64 astrid_##name(u64);
HOST(read_file)
HOST(write_file)
HOST(http_request)
HOST(fs_exists)
HOST(fs_mkdir)
HOST(fs_readdir)
HOST(fs_stat)
HOST(fs_unlink)
HOST(kv_get)
HOST(kv_set)
HOST(get_config)
HOST(log)

static JSRuntime *rt;
static JSContext *ctx;
static int reseeded; /* 0 in the snapshot: every new instance reseeds Math.random once */

/* ------------------------------------------------------------------ Extism memory */

static u64 to_extism(const char *data, size_t n) {
    u64 block = extism_alloc(n);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        u64 word;
        memcpy(&word, data + i, 8);
        extism_store_u64(block + i, word);
    }
    for (; i < n; i++) extism_store_u8(block + i, (uint8_t)data[i]);
    return block;
}

static char *from_extism(u64 block, size_t *length) {
    size_t n = (size_t)extism_length(block);
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        u64 word = extism_load_u64(block + i);
        memcpy(out + i, &word, 8);
    }
    for (; i < n; i++) out[i] = (char)extism_load_u8(block + i);
    out[n] = 0;
    *length = n;
    return out;
}

static char *read_input(size_t *length) {
    size_t n = (size_t)extism_input_length();
    char *out = malloc(n + 1);
    if (!out) return NULL;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        u64 word = extism_input_load_u64(i);
        memcpy(out + i, &word, 8);
    }
    for (; i < n; i++) out[i] = (char)extism_input_load_u8(i);
    out[n] = 0;
    *length = n;
    return out;
}

static void set_output(const char *data, size_t n) {
    extism_output_set(to_extism(data, n), n);
}

static int fail(const char *message) {
    extism_error_set(to_extism(message, strlen(message)));
    return 1;
}

/* ------------------------------------------------------------------ JS globals */

static JSValue js_host(JSContext *c, JSValueConst this_val, int argc, JSValueConst *argv) {
    (void)this_val;
    if (argc < 2) return JS_ThrowTypeError(c, "__astrid_host(name, json)");
    const char *name = JS_ToCString(c, argv[0]);
    size_t n;
    const char *request = JS_ToCStringLen(c, &n, argv[1]);
    if (!name || !request) {
        JS_FreeCString(c, name);
        JS_FreeCString(c, request);
        return JS_EXCEPTION;
    }
    u64 block = to_extism(request, n), reply;
    JS_FreeCString(c, request);
#define CASE(fn) else if (!strcmp(name, #fn)) reply = astrid_##fn(block);
    if (0) reply = 0;
    CASE(read_file) CASE(write_file) CASE(http_request) CASE(fs_exists) CASE(fs_mkdir)
    CASE(fs_readdir) CASE(fs_stat) CASE(fs_unlink) CASE(kv_get) CASE(kv_set) CASE(get_config)
    CASE(log)
    else {
        extism_free(block);
        JSValue e = JS_ThrowTypeError(c, "no host function %s", name);
        JS_FreeCString(c, name);
        return e;
    }
#undef CASE
    JS_FreeCString(c, name);
    extism_free(block);
    size_t length;
    char *text = from_extism(reply, &length);
    extism_free(reply);
    if (!text) return JS_ThrowOutOfMemory(c);
    JSValue out = JS_NewStringLen(c, text, length);
    free(text);
    return out;
}

static JSValue js_entropy(JSContext *c, JSValueConst this_val, int argc, JSValueConst *argv) {
    (void)this_val, (void)argc, (void)argv;
    uint32_t words[4];
    if (__wasi_random_get((uint8_t *)words, sizeof words) != 0)
        return JS_ThrowInternalError(c, "random_get failed");
    JSValue array = JS_NewArray(c);
    for (int i = 0; i < 4; i++) JS_SetPropertyUint32(c, array, i, JS_NewUint32(c, words[i]));
    return array;
}

static int start_engine(void) {
    if (ctx) return 0;
    rt = JS_NewRuntime();
    if (!rt) return -1;
    /* The linker gives 1 MiB of shadow stack; leave headroom for C frames below JS. */
    JS_SetMaxStackSize(rt, 768 * 1024);
    ctx = JS_NewContext(rt);
    if (!ctx) return -1;
    JSValue global = JS_GetGlobalObject(ctx);
    JS_SetPropertyStr(ctx, global, "__astrid_host", JS_NewCFunction(ctx, js_host, "__astrid_host", 2));
    JS_SetPropertyStr(ctx, global, "__astrid_entropy",
                      JS_NewCFunction(ctx, js_entropy, "__astrid_entropy", 0));
    JS_FreeValue(ctx, global);
    return 0;
}

/* The text of the pending exception (message and stack), malloc'ed. */
static char *exception_text(void) {
    JSValue exc = JS_GetException(ctx);
    const char *message = JS_ToCString(ctx, exc);
    const char *stack = NULL;
    JSValue stack_value = JS_UNDEFINED;
    if (JS_IsObject(exc)) {
        stack_value = JS_GetPropertyStr(ctx, exc, "stack");
        if (JS_IsString(stack_value)) stack = JS_ToCString(ctx, stack_value);
    }
    size_t n = strlen(message ? message : "exception") + (stack ? strlen(stack) : 0) + 2;
    char *out = malloc(n);
    if (out) snprintf(out, n, "%s%s%s", message ? message : "exception", stack ? "\n" : "",
                      stack ? stack : "");
    JS_FreeCString(ctx, message);
    JS_FreeCString(ctx, stack);
    JS_FreeValue(ctx, stack_value);
    JS_FreeValue(ctx, exc);
    return out;
}

static int fail_exception(void) {
    char *text = exception_text();
    int rc = fail(text ? text : "out of memory");
    free(text);
    return rc;
}

static int load_script(const char *source, size_t n) {
    if (start_engine() != 0) return fail("cannot start the JS engine");
    JSValue result = JS_Eval(ctx, source, n, "plugin.js", JS_EVAL_TYPE_GLOBAL);
    if (JS_IsException(result)) return fail_exception();
    JS_FreeValue(ctx, result);
    JSContext *job;
    while (JS_ExecutePendingJob(rt, &job) > 0) {
    }
    return 0;
}

/* Call a global JS function with string arguments, then run the event loop until the value
 * (a promise or not) settles; returns the settled value or JS_EXCEPTION. */
static JSValue call_settled(const char *function, int argc, JSValue *argv) {
    JSValue global = JS_GetGlobalObject(ctx);
    JSValue fn = JS_GetPropertyStr(ctx, global, function);
    JSValue value = JS_Call(ctx, fn, global, argc, argv);
    JS_FreeValue(ctx, fn);
    JSValue run_timers = JS_GetPropertyStr(ctx, global, "__astrid_run_timer");
    JS_FreeValue(ctx, global);
    while (!JS_IsException(value)) {
        JSContext *job;
        int ran;
        while ((ran = JS_ExecutePendingJob(rt, &job)) > 0) {
        }
        if (ran < 0) {
            JS_FreeValue(ctx, value);
            value = JS_EXCEPTION;
            break;
        }
        JSPromiseStateEnum state = JS_PromiseState(ctx, value);
        if (state == JS_PROMISE_FULFILLED || state == JS_PROMISE_REJECTED) {
            JSValue settled = JS_PromiseResult(ctx, value);
            JS_FreeValue(ctx, value);
            if (state == JS_PROMISE_REJECTED) {
                JS_Throw(ctx, settled);
                value = JS_EXCEPTION;
            } else {
                value = settled;
            }
            break;
        }
        if (state != JS_PROMISE_PENDING) break; /* not a promise: already the result */
        JSValue fired = JS_Call(ctx, run_timers, JS_UNDEFINED, 0, NULL);
        if (JS_IsException(fired)) {
            JS_FreeValue(ctx, value);
            value = JS_EXCEPTION;
            break;
        }
        int any = JS_ToBool(ctx, fired);
        JS_FreeValue(ctx, fired);
        if (!any) {
            JS_FreeValue(ctx, value);
            JS_ThrowInternalError(ctx, "the plugin's promise never settles: no pending job or "
                                       "timer can settle it");
            value = JS_EXCEPTION;
            break;
        }
    }
    JS_FreeValue(ctx, run_timers);
    return value;
}

static void reseed(void) {
    if (reseeded) return;
    reseeded = 1;
    JSValue none[1];
    JSValue v = call_settled("__astrid_reseed", 0, none);
    JS_FreeValue(ctx, v);
}

/* Run a global entry point of the shim with the call's input; its string result is the output. */
static int run_entry(const char *function, int index, const char *event) {
    if (!ctx) return fail("no plugin is loaded into this engine (pre-initialize it or call load)");
    reseed();
    JSValue first = event ? JS_NewString(ctx, event) : JS_NewInt32(ctx, index);
    size_t n;
    char *input = read_input(&n);
    if (!input) return fail("out of memory reading the input");
    JSValue argv[2] = {first, JS_NewStringLen(ctx, input, n)};
    free(input);
    JSValue result = call_settled(function, 2, argv);
    JS_FreeValue(ctx, argv[0]);
    JS_FreeValue(ctx, argv[1]);
    if (JS_IsException(result)) return fail_exception();
    size_t length;
    const char *text = JS_ToCStringLen(ctx, &length, result);
    JS_FreeValue(ctx, result);
    if (!text) return fail_exception();
    set_output(text, length);
    JS_FreeCString(ctx, text);
    return 0;
}

/* ------------------------------------------------------------------ exports */

extern void _initialize(void);

EXPORT("wizer.initialize") void wizer_initialize(void) {
    _initialize();
    FILE *f = fopen("/src/plugin.js", "rb");
    if (!f) abort();
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *source = malloc((size_t)n + 1);
    if (!source || fread(source, 1, (size_t)n, f) != (size_t)n) abort();
    source[n] = 0;
    fclose(f);
    if (load_script(source, (size_t)n) != 0) abort();
    free(source);
}

/* What `_initialize` becomes after Wizer: the C runtime already ran in the snapshot. */
EXPORT("astrid_initialized") void astrid_initialized(void) {}

EXPORT("load") int load(void) {
    if (ctx) return fail("a plugin is already loaded");
    size_t n;
    char *source = read_input(&n);
    if (!source) return fail("out of memory reading the script");
    int rc = load_script(source, n);
    free(source);
    if (rc) return rc;
    set_output("{}", 2);
    return 0;
}

EXPORT("describe") int describe(void) { return run_entry("__astrid_describe", 0, NULL); }

#define TOOL(i) \
    EXPORT("tool_" #i) int tool_##i(void) { return run_entry("__astrid_tool", i, NULL); }
TOOL(0) TOOL(1) TOOL(2) TOOL(3) TOOL(4) TOOL(5) TOOL(6) TOOL(7) TOOL(8) TOOL(9)
TOOL(10) TOOL(11) TOOL(12) TOOL(13) TOOL(14) TOOL(15) TOOL(16) TOOL(17) TOOL(18) TOOL(19)
TOOL(20) TOOL(21) TOOL(22) TOOL(23) TOOL(24) TOOL(25) TOOL(26) TOOL(27) TOOL(28) TOOL(29)
TOOL(30) TOOL(31)

#define HOOK(event) \
    EXPORT("hook_" #event) int hook_##event(void) { \
        return run_entry("__astrid_hook", 0, #event); \
    }
HOOK(BeforeToolCall) HOOK(AfterToolCall) HOOK(UserPrompt) HOOK(SessionStart) HOOK(SessionEnd)
