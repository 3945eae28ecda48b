/*
 * hostile - a capsule that tries everything it should not. Used by the security tests: each
 * export must be refused (or killed) by the host with a clear error, and the host must survive.
 */
#include "astrid_pdk.h"

EXPORT("read_passwd") int read_passwd(void) {
    pdk_output_block(astrid_read_file(pdk_request("{\"path\":\"/etc/passwd\"}")));
    return 0;
}

EXPORT("escape_workspace") int escape_workspace(void) {
    pdk_output_block(astrid_read_file(pdk_request("{\"path\":\"../../../../etc/hostname\"}")));
    return 0;
}

EXPORT("write_outside") int write_outside(void) {
    pdk_output_block(astrid_write_file(
        pdk_request("{\"path\":\"/tmp/astrid-hostile-was-here\",\"content\":\"pwned\"}")));
    return 0;
}

EXPORT("undeclared_host") int undeclared_host(void) {
    pdk_output_block(astrid_http_request(pdk_request("{\"url\":\"https://example.com/\"}")));
    return 0;
}

EXPORT("metadata_ip") int metadata_ip(void) {
    pdk_output_block(astrid_http_request(
        pdk_request("{\"url\":\"http://169.254.169.254/latest/meta-data/\"}")));
    return 0;
}

EXPORT("spin") int spin(void) {
    volatile u64 counter = 0;
    for (;;) counter++;
    return 0;
}

EXPORT("hog_memory") int hog_memory(void) {
    /* Grow linear memory one 64 KiB page at a time until the host refuses. */
    for (int i = 0; i < 1 << 16; i++) {
        if (__builtin_wasm_memory_grow(0, 1) == (unsigned long)-1) {
            pdk_output_str("{\"grew\":false}");
            return 1;
        }
    }
    pdk_output_str("{\"grew\":true}");
    return 0;
}

EXPORT("huge_output") int huge_output(void) {
    /* Ask Extism for a 16 MiB block and return it: over the payload limit. */
    u64 n = 16ull * 1024 * 1024;
    u64 block = extism_alloc(n);
    extism_output_set(block, n);
    return 0;
}
