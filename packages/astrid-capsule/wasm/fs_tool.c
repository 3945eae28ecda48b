/*
 * fs_tool - forwards its JSON input to one file host function per export and returns the
 * host's JSON reply. The race tests drive every file host function through it, with a symlink
 * flipper running on the host, to show that none of them reaches outside the capsule's grant.
 */
#include "astrid_pdk.h"

#define FORWARD(export_name, function) \
    EXPORT(export_name) int function##_export(void) { \
        pdk_output_block(astrid_##function(pdk_input_block())); \
        return 0; \
    }

FORWARD("read", read_file)
FORWARD("write", write_file)
FORWARD("exists", fs_exists)
FORWARD("mkdir", fs_mkdir)
FORWARD("readdir", fs_readdir)
FORWARD("stat", fs_stat)
FORWARD("unlink", fs_unlink)
