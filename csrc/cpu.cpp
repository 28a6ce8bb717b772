#include "cpu.h"

#include <cstdlib>
#include <cstring>

namespace edgeinf {

// EDGEINF_FORCE_GENERIC=1 lets tests and benchmarks compare the SIMD paths with the
// portable one in the same build.
static bool force_generic() {
    const char* v = std::getenv("EDGEINF_FORCE_GENERIC");
    return v != nullptr && std::strcmp(v, "0") != 0 && v[0] != '\0';
}

Isa best_isa() {
    if (force_generic()) return Isa::Generic;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
#if defined(EDGEINF_HAVE_AVX2)
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return Isa::AVX2;
#endif
#if defined(EDGEINF_HAVE_SSE41)
    if (__builtin_cpu_supports("sse4.1")) return Isa::SSE41;
#endif
    return Isa::Generic;
#elif defined(EDGEINF_HAVE_NEON)
    // NEON is mandatory on AArch64, where its kernels are compiled in.
    return Isa::NEON;
#else
    return Isa::Generic;
#endif
}

bool isa_runs(Isa isa) {
    if (isa == Isa::Generic) return true;
    if (!isa_compiled(isa)) return false;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (isa == Isa::AVX2) return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (isa == Isa::SSE41) return __builtin_cpu_supports("sse4.1");
    return false;
#else
    return isa == Isa::NEON;
#endif
}

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::SSE41: return "sse4.1";
        case Isa::AVX2: return "avx2";
        case Isa::NEON: return "neon";
        default: return "generic";
    }
}

int simd_width_bits(Isa isa) {
    switch (isa) {
        case Isa::SSE41: return 128;
        case Isa::AVX2: return 256;
        case Isa::NEON: return 128;
        default: return 0;
    }
}

}  // namespace edgeinf
