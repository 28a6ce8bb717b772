// AVX2 preprocessing ops: the x86 code of preprocess_x86.inc built with VEX encoding and
// two pixels per register in the blend.
#include <immintrin.h>

#include "preprocess.h"

namespace edgeinf {
#define EDGEINF_SFX avx2
#include "preprocess_x86.inc"
extern const PreprocessOps kPreprocessAVX2 = {hresize_avx2, vblend_avx2, store_f32_avx2};
}  // namespace edgeinf
