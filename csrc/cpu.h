// Run-time CPU feature detection. Kernels pick their ISA path once, from here.
#pragma once

namespace edgeinf {

enum class Isa : int { Generic = 0, SSE41 = 1, AVX2 = 2, NEON = 3, AVX512 = 4 };

// Every Isa, in the order bindings and tests list them.
constexpr Isa kAllIsas[] = {Isa::Generic, Isa::SSE41, Isa::AVX2, Isa::AVX512, Isa::NEON};

// Best ISA path compiled into this build that the running CPU supports.
Isa best_isa();
const char* isa_name(Isa isa);
// SIMD register width of that path, in bits (128 SSE/NEON, 256 AVX2, 512 AVX-512, 0 generic).
int simd_width_bits(Isa isa);
// Whether this build holds kernels for isa (the generic path always).
bool isa_compiled(Isa isa);
// Whether the running CPU can execute isa's kernels (ignores EDGEINF_FORCE_GENERIC).
bool isa_runs(Isa isa);

}  // namespace edgeinf
