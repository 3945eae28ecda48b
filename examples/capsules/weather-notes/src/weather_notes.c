/*
 * weather-notes - an example Astrid WASM capsule written in C, without libc.
 *
 * Tools (declared in ../Capsule.toml):
 *   save_note   {"path": "notes/x.md"}  read the file (host read_file), store a summary (kv_set)
 *   recall_note {"path": "notes/x.md"}  return the stored summary (kv_get); "index": the index
 *   index_notes {}                      list notes/ (fs_readdir), store the index under "index"
 *   fetch       {"url": "https://wttr.in/Paris?format=3"}  GET over the host's http_request
 *
 * index_notes takes no arguments because Capsule.toml's [[cron]] entry runs it unattended,
 * and a scheduled run is always called with {}.
 *
 * The capsule never touches files, storage or the network itself: each of those is a host
 * call, and the host decides (declared in the manifest, accepted at install, confined to the
 * workspace, authorized by the session's interceptor). So the capsule only has to parse JSON.
 *
 * JSON strings are never decoded here. A string's raw text between its quotes is already valid
 * JSON string content, so it is copied into requests and outputs as is: no escaping bugs, and
 * non-ASCII text (which the host sends as \uXXXX) passes through untouched.
 *
 * Build: examples/capsules/build.sh (clang --target=wasm32-unknown-unknown, see that script).
 */
#include "astrid_pdk.h"

#define FAIL ((u32)-1)
#define MAX_INPUT (64u * 1024u)
#define MAX_REPLY (1024u * 1024u) /* a note over ~1 MiB of JSON is refused, not truncated */
#define MAX_REQUEST (4u * 1024u)
#define MAX_OUTPUT (4u * 1024u)
#define FIRST_LINE_BYTES 120u
#define INDEX_BYTES 2048u /* the stored index; the names past it are counted, not listed */
#define INDEX_NAMES 32u

static u8 input_buf[MAX_INPUT];
static u8 reply_buf[MAX_REPLY];
static u8 request_buf[MAX_REQUEST];
static u8 output_buf[MAX_OUTPUT];

/* The raw text of one JSON value (or of a string's content), inside one of the buffers. */
typedef struct {
    const u8 *p;
    u32 n;
} span;

/* ------------------------------------------------------------------ buffers */

typedef struct {
    u8 *buf;
    u32 cap;
    u32 len;
    int overflow;
} builder;

static void put_bytes(builder *b, const u8 *p, u32 n) {
    if (b->len + n > b->cap) {
        b->overflow = 1;
        return;
    }
    for (u32 i = 0; i < n; i++) b->buf[b->len + i] = p[i];
    b->len += n;
}

static void put(builder *b, const char *s) { put_bytes(b, (const u8 *)s, (u32)pdk_strlen(s)); }

static void put_span(builder *b, span s) { put_bytes(b, s.p, s.n); }

static void put_u32(builder *b, u32 value) {
    u8 digits[10];
    u32 n = 0;
    do {
        digits[n++] = (u8)('0' + value % 10);
        value /= 10;
    } while (value);
    while (n) put_bytes(b, &digits[--n], 1);
}

/* Copy the plugin input into input_buf; FAIL when it does not fit. */
static u32 load_input(void) {
    u64 n = extism_input_length();
    if (n > MAX_INPUT) return FAIL;
    for (u64 i = 0; i < n; i++) input_buf[i] = extism_input_load_u8(i);
    return (u32)n;
}

/* Copy an Extism block (a host reply) into reply_buf; FAIL when it does not fit. */
static u32 load_reply(u64 block) {
    u64 n = extism_length(block);
    if (n > MAX_REPLY) {
        extism_free(block);
        return FAIL;
    }
    for (u64 i = 0; i < n; i++) reply_buf[i] = extism_load_u8(block + i);
    extism_free(block);
    return (u32)n;
}

static u64 to_block(builder *b) { return pdk_to_extism(b->buf, b->len); }

static int output(builder *b) {
    if (b->overflow) {
        pdk_output_str("{\"ok\":false,\"error\":\"the answer did not fit in the output buffer\"}");
        return 1;
    }
    extism_output_set(to_block(b), b->len);
    return 0;
}

/* A refusal the agent can read. Returning 0 keeps it a normal answer: a non-zero return
 * would make the whole call fail with a generic error instead. Messages are literals without
 * quotes or backslashes, so they are embedded as they are. */
static int fail_with(const char *message) {
    builder b = {output_buf, MAX_OUTPUT, 0, 0};
    put(&b, "{\"ok\":false,\"error\":\"");
    put(&b, message);
    put(&b, "\"}");
    output(&b);
    return 0;
}

/* ------------------------------------------------------------------ a small JSON scanner */

static u32 skip_ws(const u8 *s, u32 i, u32 n) {
    while (i < n && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r')) i++;
    return i;
}

/* s[i] is an opening quote: the index just past the closing one. */
static u32 skip_string(const u8 *s, u32 i, u32 n) {
    for (i++; i < n; i++) {
        if (s[i] == '\\') {
            i++;
        } else if (s[i] == '"') {
            return i + 1;
        }
    }
    return FAIL;
}

/* The index just past the value that starts at s[i]. */
static u32 skip_value(const u8 *s, u32 i, u32 n) {
    if (i >= n) return FAIL;
    if (s[i] == '"') return skip_string(s, i, n);
    if (s[i] == '{' || s[i] == '[') {
        u32 depth = 0;
        while (i < n) {
            if (s[i] == '"') {
                i = skip_string(s, i, n);
                if (i == FAIL) return FAIL;
                continue;
            }
            if (s[i] == '{' || s[i] == '[') depth++;
            if (s[i] == '}' || s[i] == ']') {
                if (--depth == 0) return i + 1;
            }
            i++;
        }
        return FAIL;
    }
    u32 start = i; /* a number, true, false or null */
    while (i < n && s[i] != ',' && s[i] != '}' && s[i] != ']' && s[i] != ' ' && s[i] != '\t' &&
           s[i] != '\n' && s[i] != '\r')
        i++;
    return i > start ? i : FAIL;
}

static int same_key(const u8 *raw, u32 n, const char *key) {
    u32 i = 0;
    for (; i < n && key[i]; i++)
        if (raw[i] != (u8)key[i]) return 0;
    return i == n && key[i] == 0;
}

/* The value of member `key` of the object `object`; 0 when absent or not an object. */
static int member(span object, const char *key, span *value) {
    const u8 *s = object.p;
    u32 n = object.n;
    u32 i = skip_ws(s, 0, n);
    if (i >= n || s[i] != '{') return 0;
    i = skip_ws(s, i + 1, n);
    if (i < n && s[i] == '}') return 0;
    while (i < n && s[i] == '"') {
        u32 key_end = skip_string(s, i, n);
        if (key_end == FAIL) return 0;
        const u8 *name = s + i + 1;
        u32 name_len = key_end - i - 2;
        i = skip_ws(s, key_end, n);
        if (i >= n || s[i] != ':') return 0;
        i = skip_ws(s, i + 1, n);
        u32 end = skip_value(s, i, n);
        if (end == FAIL) return 0;
        if (same_key(name, name_len, key)) {
            value->p = s + i;
            value->n = end - i;
            return 1;
        }
        i = skip_ws(s, end, n);
        if (i >= n || s[i] != ',') return 0;
        i = skip_ws(s, i + 1, n);
    }
    return 0;
}

/* The raw content (between the quotes) of a non-empty string member. */
static int string_member(span object, const char *key, span *content) {
    span value;
    if (!member(object, key, &value) || value.n < 3 || value.p[0] != '"') return 0;
    content->p = value.p + 1;
    content->n = value.n - 2;
    return 1;
}

/* A host reply is {"ok": true, "value": ...} or {"ok": false, "error": "..."}. */
static int host_ok(span reply, span *value) {
    span ok;
    return member(reply, "ok", &ok) && same_key(ok.p, ok.n, "true") &&
           member(reply, "value", value);
}

/* Call a host function with the request in `b`; the reply lands in reply_buf.
 * Returns 0, or why the call could not be made. */
static const char *host_call(u64 (*function)(u64), builder *b, span *reply) {
    if (b->overflow) return "the request is too long (a path or URL over 4 KiB?)";
    u64 request = to_block(b);
    u32 n = load_reply(function(request));
    extism_free(request);
    if (n == FAIL) return "the host answer is over 1 MiB, more than this capsule reads";
    reply->p = reply_buf;
    reply->n = n;
    return 0;
}

/* Pass a host refusal ({"ok": false, "error": ...}) on to the agent as it is. */
static int forward(span reply) {
    pdk_output_block(pdk_to_extism(reply.p, reply.n));
    return 0;
}

/* ------------------------------------------------------------------ summaries */

/* Length of the escape sequence at s[i] (a backslash): \uXXXX is 6 bytes, the others 2. */
static u32 escape_len(const u8 *s, u32 i, u32 n) {
    u32 len = (i + 1 < n && s[i + 1] == 'u') ? 6 : 2;
    return i + len <= n ? len : n - i;
}

static int is_newline_escape(const u8 *s, u32 i, u32 n) {
    return s[i] == '\\' && i + 1 < n && (s[i + 1] == 'n' || s[i + 1] == 'r');
}

static int is_space_at(const u8 *s, u32 i, u32 n) {
    return s[i] == ' ' || (s[i] == '\\' && i + 1 < n && (s[i + 1] == 'n' || s[i + 1] == 'r' ||
                                                         s[i + 1] == 't'));
}

/* The first line of the text, markdown heading marks dropped, at most FIRST_LINE_BYTES raw
 * bytes and never cut inside an escape sequence. */
static span first_line(span text) {
    u32 i = 0;
    while (i < text.n && (text.p[i] == '#' || text.p[i] == ' ')) i++;
    u32 start = i;
    while (i < text.n && !is_newline_escape(text.p, i, text.n)) {
        u32 step = text.p[i] == '\\' ? escape_len(text.p, i, text.n) : 1;
        if (i + step - start > FIRST_LINE_BYTES) break;
        i += step;
    }
    span line = {text.p + start, i - start};
    return line;
}

static void put_summary(builder *b, span text) {
    u32 lines = 0, words = 0, in_word = 0, last_was_newline = 0;
    for (u32 i = 0; i < text.n;) {
        u32 step = text.p[i] == '\\' ? escape_len(text.p, i, text.n) : 1;
        last_was_newline = text.p[i] == '\\' && i + 1 < text.n && text.p[i + 1] == 'n';
        if (last_was_newline) lines++;
        if (is_space_at(text.p, i, text.n)) {
            in_word = 0;
        } else if (!in_word) {
            in_word = 1;
            words++;
        }
        i += step;
    }
    if (text.n > 0 && !last_was_newline) lines++; /* a last line without a final newline */
    put(b, "{\"first_line\":\"");
    put_span(b, first_line(text));
    put(b, "\",\"lines\":");
    put_u32(b, lines);
    put(b, ",\"words\":");
    put_u32(b, words);
    put(b, "}");
}

/* ------------------------------------------------------------------ tools */

static int input_string(const char *key, span *content) {
    u32 n = load_input();
    if (n == FAIL) return 0;
    span in = {input_buf, n};
    return string_member(in, key, content);
}

EXPORT("save_note") int save_note(void) {
    span path, reply, value, text;
    if (!input_string("path", &path)) return fail_with("save_note needs {path: a workspace file}");

    builder read = {request_buf, MAX_REQUEST, 0, 0};
    put(&read, "{\"path\":\"");
    put_span(&read, path);
    put(&read, "\"}");
    const char *problem = host_call(astrid_read_file, &read, &reply);
    if (problem) return fail_with(problem);
    if (!host_ok(reply, &value)) return forward(reply); /* refused or missing: it says why */
    if (!member(value, "text", &text) || text.n < 2 || text.p[0] != '"')
        return fail_with("the note is not UTF-8 text");
    text.p += 1;
    text.n -= 2;

    /* The summary is written twice (kv and output) from the same text: build it once. */
    static u8 summary_buf[FIRST_LINE_BYTES + 64];
    builder summary = {summary_buf, sizeof summary_buf, 0, 0};
    put_summary(&summary, text);
    span summary_json = {summary.buf, summary.len};

    builder store = {request_buf, MAX_REQUEST, 0, 0};
    put(&store, "{\"key\":\"");
    put_span(&store, path);
    put(&store, "\",\"value\":");
    put_span(&store, summary_json);
    put(&store, "}");
    if (summary.overflow) return fail_with("the summary did not fit its buffer");
    problem = host_call(astrid_kv_set, &store, &reply);
    if (problem) return fail_with(problem);
    if (!host_ok(reply, &value)) return forward(reply);

    builder out = {output_buf, MAX_OUTPUT, 0, 0};
    put(&out, "{\"ok\":true,\"saved\":\"");
    put_span(&out, path);
    put(&out, "\",\"summary\":");
    put_span(&out, summary_json);
    put(&out, "}");
    return output(&out);
}

EXPORT("recall_note") int recall_note(void) {
    span path, reply, value, note;
    if (!input_string("path", &path)) return fail_with("recall_note needs {path: a saved note}");

    builder get = {request_buf, MAX_REQUEST, 0, 0};
    put(&get, "{\"key\":\"");
    put_span(&get, path);
    put(&get, "\"}");
    const char *problem = host_call(astrid_kv_get, &get, &reply);
    if (problem) return fail_with(problem);
    if (!host_ok(reply, &value)) return forward(reply);
    if (!member(value, "value", &note) || same_key(note.p, note.n, "null"))
        return fail_with("no note saved for this path: call save_note first");

    builder out = {output_buf, MAX_OUTPUT, 0, 0};
    put(&out, "{\"ok\":true,\"path\":\"");
    put_span(&out, path);
    put(&out, "\",\"note\":");
    put_span(&out, note);
    put(&out, "}");
    return output(&out);
}

/* The strings of a JSON array (a readdir reply's entries) into `b` as a JSON array: at most
 * INDEX_NAMES of them, whole, leaving room for the rest of the index. Returns how many the
 * array holds, so a folder of many notes is counted right even when not all are listed. */
static u32 put_names(builder *b, span array) {
    const u8 *s = array.p;
    u32 n = array.n, count = 0, listed = 0;
    u32 i = skip_ws(s, 0, n);
    put(b, "[");
    if (i < n && s[i] == '[') i = skip_ws(s, i + 1, n);
    while (i < n && s[i] == '"') {
        u32 end = skip_string(s, i, n);
        if (end == FAIL) break;
        count++;
        /* 24: the comma, "]" and ',"count":<u32>}' that follow */
        if (listed < INDEX_NAMES && b->len + (end - i) + 24 <= b->cap) {
            if (listed++) put(b, ",");
            put_bytes(b, s + i, end - i); /* the raw string, quotes included */
        }
        i = skip_ws(s, end, n);
        if (i >= n || s[i] != ',') break;
        i = skip_ws(s, i + 1, n);
    }
    put(b, "]");
    return count;
}

EXPORT("index_notes") int index_notes(void) {
    span reply, value, entries;
    builder list = {request_buf, MAX_REQUEST, 0, 0};
    put(&list, "{\"path\":\"notes\"}");
    const char *problem = host_call(astrid_fs_readdir, &list, &reply);
    if (problem) return fail_with(problem);
    if (!host_ok(reply, &value)) return forward(reply); /* refused, or no notes/ folder */
    if (!member(value, "entries", &entries)) return fail_with("the listing has no entries");

    /* Built before the next host call, which reuses reply_buf that `entries` points into. */
    static u8 index_buf[INDEX_BYTES];
    builder index = {index_buf, sizeof index_buf, 0, 0};
    put(&index, "{\"names\":");
    u32 count = put_names(&index, entries);
    put(&index, ",\"count\":");
    put_u32(&index, count);
    put(&index, "}");
    if (index.overflow) return fail_with("the index did not fit its buffer");
    span index_json = {index.buf, index.len};

    builder store = {request_buf, MAX_REQUEST, 0, 0};
    put(&store, "{\"key\":\"index\",\"value\":");
    put_span(&store, index_json);
    put(&store, "}");
    problem = host_call(astrid_kv_set, &store, &reply);
    if (problem) return fail_with(problem);
    if (!host_ok(reply, &value)) return forward(reply);

    builder out = {output_buf, MAX_OUTPUT, 0, 0};
    put(&out, "{\"ok\":true,\"index\":");
    put_span(&out, index_json);
    put(&out, "}");
    return output(&out);
}

EXPORT("fetch") int fetch(void) {
    span url, reply;
    if (!input_string("url", &url)) return fail_with("fetch needs {url: an https URL}");

    builder get = {request_buf, MAX_REQUEST, 0, 0};
    put(&get, "{\"method\":\"GET\",\"url\":\"");
    put_span(&get, url);
    put(&get, "\"}");
    const char *problem = host_call(astrid_http_request, &get, &reply);
    if (problem) return fail_with(problem);
    /* The host's reply as it is: {"ok":true,"value":{"status","headers","body"}} or an error. */
    return forward(reply);
}
