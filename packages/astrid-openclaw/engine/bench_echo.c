/*
 * bench_echo.c - the C baseline of benchmarks/openclaw.py: copy the input to the output
 * through the Extism kernel, the same data path an OpenClaw tool's call takes, minus the JS.
 */
#include "astrid_pdk.h"

EXPORT("echo") int echo(void) {
    pdk_output_block(pdk_input_block());
    return 0;
}
