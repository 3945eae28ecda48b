/*
 * policy_hook - an [[interceptor]] capsule for the BeforeToolCall event.
 *
 * The host passes the event as JSON ({"event": "BeforeToolCall", "tool": ..., "arguments":
 * ...}); the export answers with a decision. This one refuses every deletion, the kind of rule
 * a user installs as a policy capsule. `broken_hook` answers garbage, so the tests can prove
 * that an interceptor which cannot answer cleanly denies the call (fail closed).
 */
#include "astrid_pdk.h"

/* Does the plugin input contain `needle`? Byte-wise, no allocation. */
static int input_contains(const char *needle) {
    u64 n = pdk_strlen(needle);
    u64 length = extism_input_length();
    if (n == 0 || n > length) return n == 0;
    for (u64 start = 0; start + n <= length; start++) {
        u64 i = 0;
        while (i < n && extism_input_load_u8(start + i) == (u8)needle[i]) i++;
        if (i == n) return 1;
    }
    return 0;
}

EXPORT("before_tool_call") int before_tool_call(void) {
    if (input_contains("\"delete_file\"")) {
        pdk_output_str("{\"decision\":\"deny\",\"reason\":\"deleting files is not allowed\"}");
    } else {
        pdk_output_str("{\"decision\":\"continue\"}");
    }
    return 0;
}

EXPORT("broken_hook") int broken_hook(void) {
    pdk_output_str("this is not a decision");
    return 0;
}
