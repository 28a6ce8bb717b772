// The vendored lz4 block compressor (csrc/third_party/lz4/README.md), compiled as C++ into
// this module. Empty LZ4LIB_VISIBILITY + -fvisibility=hidden: our copy's symbols stay inside
// _kernels, so the Python lz4 package's copy in the same process is never interposed.
#define LZ4LIB_VISIBILITY
#include "third_party/lz4/lz4.c"
