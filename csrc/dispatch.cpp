// Arch fallback: maps an Isa to the kernel tables compiled into this build. setup.py (and
// .ci/arm-check) define EDGEINF_HAVE_<ISA> when they compile that ISA's files.
#include "codec.h"
#include "confidence.h"
#include "preprocess.h"
#include "shuffle.h"

namespace edgeinf {

#if defined(EDGEINF_HAVE_AVX512)
extern const CodecOps kCodecAVX512;
#endif
#if defined(EDGEINF_HAVE_AVX2)
extern const CodecOps kCodecAVX2;
extern const ConfidenceOps kConfidenceAVX2;
extern const PreprocessOps kPreprocessAVX2;
extern const ShuffleOps kShuffleAVX2;
#endif
#if defined(EDGEINF_HAVE_SSE41)
extern const CodecOps kCodecSSE41;
extern const ConfidenceOps kConfidenceSSE41;
extern const PreprocessOps kPreprocessSSE41;
#endif
#if defined(EDGEINF_HAVE_NEON)
extern const CodecOps kCodecNEON;
extern const ConfidenceOps kConfidenceNEON;
extern const PreprocessOps kPreprocessNEON;
extern const ShuffleOps kShuffleNEON;
#endif

#if defined(EDGEINF_HAVE_AVX2)
#define EDGEINF_CASE_AVX2(F) case Isa::AVX2: return k##F##AVX2;
#else
#define EDGEINF_CASE_AVX2(F)
#endif
#if defined(EDGEINF_HAVE_SSE41)
#define EDGEINF_CASE_SSE41(F) case Isa::SSE41: return k##F##SSE41;
#else
#define EDGEINF_CASE_SSE41(F)
#endif
#if defined(EDGEINF_HAVE_NEON)
#define EDGEINF_CASE_NEON(F) case Isa::NEON: return k##F##NEON;
#else
#define EDGEINF_CASE_NEON(F)
#endif
// NOTE: only the codec has AVX-512 kernels (its decoders are store-bound, where 64-byte
// stores pay); the other families run their AVX2 tables on an AVX-512 path.
#if defined(EDGEINF_HAVE_AVX512) && defined(EDGEINF_HAVE_AVX2)
#define EDGEINF_CASE_AVX512_AS_AVX2(F) case Isa::AVX512: return k##F##AVX2;
#else
#define EDGEINF_CASE_AVX512_AS_AVX2(F)
#endif

#define EDGEINF_PICK(Family)                                                        \
    switch (isa) {                                                                 \
        EDGEINF_CASE_AVX2(Family) EDGEINF_CASE_SSE41(Family) EDGEINF_CASE_NEON(Family) \
        default: return k##Family##Generic;                                        \
    }

const CodecOps& codec_ops(Isa isa) {
#if defined(EDGEINF_HAVE_AVX512)
    if (isa == Isa::AVX512) return kCodecAVX512;
#endif
    EDGEINF_PICK(Codec)
}
const ConfidenceOps& confidence_ops(Isa isa) {
    switch (isa) { EDGEINF_CASE_AVX512_AS_AVX2(Confidence) default: break; }
    EDGEINF_PICK(Confidence)
}
const PreprocessOps& preprocess_ops(Isa isa) {
    switch (isa) { EDGEINF_CASE_AVX512_AS_AVX2(Preprocess) default: break; }
    EDGEINF_PICK(Preprocess)
}
// Shuffle has AVX2 and NEON kernels only (SSE4.1 and AVX-512 reuse what fits).
const ShuffleOps& shuffle_ops(Isa isa) {
    switch (isa) {
#if defined(EDGEINF_HAVE_AVX2)
        case Isa::AVX2: case Isa::AVX512: return kShuffleAVX2;
#endif
#if defined(EDGEINF_HAVE_NEON)
        case Isa::NEON: return kShuffleNEON;
#endif
        default: return kShuffleGeneric;
    }
}

bool isa_compiled(Isa isa) {
    switch (isa) {
        case Isa::Generic: return true;
#if defined(EDGEINF_HAVE_AVX512)
        case Isa::AVX512: return true;
#endif
#if defined(EDGEINF_HAVE_AVX2)
        case Isa::AVX2: return true;
#endif
#if defined(EDGEINF_HAVE_SSE41)
        case Isa::SSE41: return true;
#endif
#if defined(EDGEINF_HAVE_NEON)
        case Isa::NEON: return true;
#endif
        default: return false;
    }
}

}  // namespace edgeinf
