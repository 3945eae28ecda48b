/*
 * github_agent - the component of seed 001's example `github-agent` capsule, whose
 * Capsule.toml (next to this folder) is the seed's, verbatim. Built with clang to
 * bin/github_agent.wasm (see ../README.md); the manifest gives no hash, so `astrid capsule
 * install` hashes it and the trust record binds to that hash.
 *
 *   sync              the `[[cron]] action = "astrid.github.sync"` target (a dotted action
 *                     runs the export named by its last segment): reads the user's git
 *                     identity (the manifest's absolute fs_read entry) and returns the host's
 *                     reply, whatever it was (a refusal included).
 *   before_tool_call  the `[[interceptor]] event = "BeforeToolCall"` handler (no `export`
 *                     given: the conventional one): refuses `git_reset` calls, lets the rest
 *                     through.
 */
#include "astrid_pdk.h"

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

EXPORT("sync") int sync(void) {
    pdk_output_block(astrid_read_file(pdk_request("{\"path\":\"/home/user/.gitconfig\"}")));
    return 0;
}

EXPORT("before_tool_call") int before_tool_call(void) {
    if (input_contains("git_reset")) {
        pdk_output_str(
            "{\"decision\":\"deny\",\"reason\":\"github-agent never resets a repository\"}");
    } else {
        pdk_output_str("{\"decision\":\"continue\",\"annotation\":\"github-agent saw it\"}");
    }
    return 0;
}
