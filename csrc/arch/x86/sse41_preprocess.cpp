// SSE4.1 preprocessing ops (see preprocess_x86.inc).
#include <immintrin.h>

#include "preprocess.h"

namespace edgeinf {
#define EDGEINF_SFX sse41
#include "preprocess_x86.inc"
extern const PreprocessOps kPreprocessSSE41 = {hresize_sse41, vblend_sse41, store_f32_sse41};
}  // namespace edgeinf
