// Run-time CPU feature detection (CPUID + XGETBV) and the choice of SIMD path for kernels.
// Invariant: an ISA is reported usable only when the CPU has it AND the OS saves its register
// state; TESSERA_CPU_ISA=scalar|avx2|avx512 may lower the choice, never raise it past that.
#pragma once

namespace tessera::kernels::cpu {

enum class Isa { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512dq = false;
  bool avx512vnni = false;
  bool avx512bf16 = false;
};

// What this CPU (and OS) supports; detected once.
const CpuFeatures& cpu_features();

// Best ISA the hardware allows: kAvx512 needs F/BW/VL/DQ/VNNI/BF16 (the flags our _avx512.cc
// files are built with); kAvx2 needs AVX2/FMA/F16C.
Isa best_supported_isa();
bool isa_supported(Isa isa);

// The ISA kernels should use: best_supported_isa(), lowered by TESSERA_CPU_ISA if set (read
// once). An override naming an unsupported ISA falls back to the best supported one.
Isa active_isa();

const char* isa_name(Isa isa);

}  // namespace tessera::kernels::cpu
