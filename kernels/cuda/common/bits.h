// f32 <-> its bit pattern on host and device, for the __host__ __device__ logic headers of the
// kernel families (fp8_block_logic.h, int8_wo_logic.h) that tests also compile on the host.
// Invariant: no CUDA headers; the same bits on both sides.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define TESSERA_BITS_HD __host__ __device__ __forceinline__
#else
#define TESSERA_BITS_HD inline
#endif

namespace tessera::kernels::cuda {

TESSERA_BITS_HD uint32_t f32_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
#endif
}

TESSERA_BITS_HD float bits_f32(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  float f;
  std::memcpy(&f, &u, 4);
  return f;
#endif
}

}  // namespace tessera::kernels::cuda
