/*
 * notes_tool - the example WASM capsule: a tiny notes tool.
 *
 * Each export forwards its JSON input as the request of one host function and returns the
 * host's JSON reply, so everything interesting (confinement, authorization, audit) happens in
 * the host, where it can be enforced. Uses read-file, write-file, kv and http-request.
 */
#include "astrid_pdk.h"

EXPORT("read_note") int read_note(void) {
    pdk_output_block(astrid_read_file(pdk_input_block()));
    return 0;
}

EXPORT("write_note") int write_note(void) {
    pdk_output_block(astrid_write_file(pdk_input_block()));
    return 0;
}

EXPORT("remember") int remember(void) {
    pdk_output_block(astrid_kv_set(pdk_input_block()));
    return 0;
}

EXPORT("recall") int recall(void) {
    pdk_output_block(astrid_kv_get(pdk_input_block()));
    return 0;
}

EXPORT("fetch") int fetch(void) {
    pdk_output_block(astrid_http_request(pdk_input_block()));
    return 0;
}

EXPORT("list") int list(void) {
    pdk_output_block(astrid_fs_readdir(pdk_input_block()));
    return 0;
}

EXPORT("setting") int setting(void) {
    pdk_output_block(astrid_get_config(pdk_input_block()));
    return 0;
}

EXPORT("noop") int noop(void) {
    pdk_output_str("{}");
    return 0;
}
