/*
 * astrid_pdk.h - the whole guest-side ABI of an Astrid WASM capsule, for C without libc.
 *
 * Two import namespaces:
 *   "extism:host/env"  Extism's kernel: input/output buffers and its memory allocator.
 *   "astrid"           Astrid's host functions. Each takes the offset of a JSON request in
 *                      Extism memory and returns the offset of a JSON reply
 *                      {"ok": true, "value": ...} or {"ok": false, "error": "..."}.
 *                      The host authorizes every gated call; a capsule gets exactly the
 *                      functions its manifest declares and the user accepted.
 *
 * Build: clang --target=wasm32-unknown-unknown -O2 -nostdlib -Wl,--no-entry \
 *        -Wl,--export-dynamic -o x.wasm x.c
 */
#ifndef ASTRID_PDK_H
#define ASTRID_PDK_H

typedef unsigned long long u64;
typedef unsigned int u32;
typedef unsigned char u8;

#define IMPORT(mod, name) __attribute__((import_module(mod), import_name(name)))
#define EXPORT(name) __attribute__((export_name(name)))

/* Extism kernel */
IMPORT("extism:host/env", "input_length") extern u64 extism_input_length(void);
IMPORT("extism:host/env", "input_load_u8") extern u8 extism_input_load_u8(u64 offset);
IMPORT("extism:host/env", "alloc") extern u64 extism_alloc(u64 length);
IMPORT("extism:host/env", "length") extern u64 extism_length(u64 offset);
IMPORT("extism:host/env", "load_u8") extern u8 extism_load_u8(u64 offset);
IMPORT("extism:host/env", "store_u8") extern void extism_store_u8(u64 offset, u8 value);
IMPORT("extism:host/env", "output_set") extern void extism_output_set(u64 offset, u64 length);
IMPORT("extism:host/env", "error_set") extern void extism_error_set(u64 offset);
IMPORT("extism:host/env", "free") extern void extism_free(u64 offset);

/* Astrid host functions (seed 001's table) */
IMPORT("astrid", "read_file") extern u64 astrid_read_file(u64 request);
IMPORT("astrid", "write_file") extern u64 astrid_write_file(u64 request);
IMPORT("astrid", "http_request") extern u64 astrid_http_request(u64 request);
IMPORT("astrid", "fs_exists") extern u64 astrid_fs_exists(u64 request);
IMPORT("astrid", "fs_mkdir") extern u64 astrid_fs_mkdir(u64 request);
IMPORT("astrid", "fs_readdir") extern u64 astrid_fs_readdir(u64 request);
IMPORT("astrid", "fs_stat") extern u64 astrid_fs_stat(u64 request);
IMPORT("astrid", "fs_unlink") extern u64 astrid_fs_unlink(u64 request);
IMPORT("astrid", "kv_get") extern u64 astrid_kv_get(u64 request);
IMPORT("astrid", "kv_set") extern u64 astrid_kv_set(u64 request);
IMPORT("astrid", "get_config") extern u64 astrid_get_config(u64 request);
IMPORT("astrid", "log") extern u64 astrid_log(u64 request);

static u64 pdk_strlen(const char *s) {
    u64 n = 0;
    while (s[n]) n++;
    return n;
}

/* Copy bytes into a fresh Extism memory block; returns its offset. */
static u64 pdk_to_extism(const u8 *data, u64 length) {
    u64 block = extism_alloc(length);
    for (u64 i = 0; i < length; i++) extism_store_u8(block + i, data[i]);
    return block;
}

/* The plugin input, copied into a fresh Extism block (to forward it to a host function). */
static u64 pdk_input_block(void) {
    u64 length = extism_input_length();
    u64 block = extism_alloc(length);
    for (u64 i = 0; i < length; i++) extism_store_u8(block + i, extism_input_load_u8(i));
    return block;
}

/* Make an Extism block the plugin's output. */
static void pdk_output_block(u64 block) {
    extism_output_set(block, extism_length(block));
}

static void pdk_output_str(const char *s) {
    u64 n = pdk_strlen(s);
    extism_output_set(pdk_to_extism((const u8 *)s, n), n);
}

static u64 pdk_request(const char *json) {
    return pdk_to_extism((const u8 *)json, pdk_strlen(json));
}

#endif
