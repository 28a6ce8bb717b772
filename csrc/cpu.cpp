#include "cpu.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>

namespace edgeinf {

// EDGEINF_FORCE_GENERIC=1 lets tests and benchmarks compare the SIMD paths with the
// portable one in the same build.
static bool force_generic() {
    const char* v = std::getenv("EDGEINF_FORCE_GENERIC");
    return v != nullptr && std::strcmp(v, "0") != 0 && v[0] != '\0';
}

#if defined(__x86_64__) || defined(__i386__)
// The OS must save the opmask and zmm state (XCR0 bits 1, 2, 5, 6, 7), not only the CPU
// advertise AVX-512: a kernel or hypervisor that disables it would fault on first use.
static bool os_saves_zmm() {
    __builtin_cpu_init();
    if (!__builtin_cpu_supports("avx")) return false;  // implies OSXSAVE, so xgetbv is legal
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (lo & 0xE6u) == 0xE6u;
}

static bool x86_runs(Isa isa) {
    __builtin_cpu_init();
    switch (isa) {
        case Isa::AVX512:
            // NOTE: F + BW (byte/word ops) + VL; every AVX-512 CPU since Skylake-SP and Zen 4.
            return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                   __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx2") &&
                   __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c") && os_saves_zmm();
        case Isa::AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
        case Isa::SSE41: return __builtin_cpu_supports("sse4.1");
        default: return false;
    }
}
#endif

bool isa_runs(Isa isa) {
    if (isa == Isa::Generic) return true;
    if (!isa_compiled(isa)) return false;
#if defined(__x86_64__) || defined(__i386__)
    return x86_runs(isa);
#else
    return isa == Isa::NEON;  // NEON is mandatory on AArch64, where its kernels are compiled in
#endif
}

Isa best_isa() {
    if (force_generic()) return Isa::Generic;
    static constexpr Isa kBestFirst[] = {Isa::AVX512, Isa::AVX2, Isa::SSE41, Isa::NEON};
    for (Isa isa : kBestFirst)
        if (isa_runs(isa)) return isa;
    return Isa::Generic;
}

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::SSE41: return "sse4.1";
        case Isa::AVX2: return "avx2";
        case Isa::AVX512: return "avx512";
        case Isa::NEON: return "neon";
        default: return "generic";
    }
}

int simd_width_bits(Isa isa) {
    switch (isa) {
        case Isa::SSE41: return 128;
        case Isa::AVX2: return 256;
        case Isa::AVX512: return 512;
        case Isa::NEON: return 128;
        default: return 0;
    }
}

}  // namespace edgeinf
