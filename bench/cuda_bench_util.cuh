// What every bench/cuda_*_bench shares: a fatal CUDA check, the device probe (`--probe`, exit 2
// without a GPU), event timing of a launch, device allocation, an NMSE cross-check, and the
// measured HBM floor (a 2 x 1 GiB copy).
// Invariant: benches print floors measured on the machine they run on, never datasheet peaks.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <type_traits>
#include <vector>

namespace tessera::bench {

#define TB_CHECK_CUDA(expr)                                                                      \
  do {                                                                                           \
    const cudaError_t e_ = (expr);                                                               \
    if (e_ != cudaSuccess) {                                                                     \
      std::fprintf(stderr, "%s:%d %s: %s\n", __FILE__, __LINE__, #expr, cudaGetErrorString(e_)); \
      std::exit(1);                                                                              \
    }                                                                                            \
  } while (0)

// Device 0's properties, printed; returns -1 to go on, else the exit code (2: no GPU, 0: the
// `--probe` run ends here).
inline int open_device(int argc, char** argv, cudaDeviceProp* prop) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0) {
    std::printf("no GPU: %s\n", cudaGetErrorString(cudaGetLastError()));
    return 2;
  }
  TB_CHECK_CUDA(cudaGetDeviceProperties(prop, 0));
  std::printf("device: %s (sm_%d%d, %d SMs, %.0f GiB)\n", prop->name, prop->major, prop->minor,
              prop->multiProcessorCount, prop->totalGlobalMem / double(1ull << 30));
  if (argc > 1 && std::strcmp(argv[1], "--probe") == 0) return 0;
  return -1;
}

// Mean milliseconds of `fn` (a launch on the legacy default stream; returns cudaError_t or
// nothing) over `iters` runs after one warm-up.
template <typename Fn>
double time_ms(Fn&& fn, int iters = 20) {
  auto run = [&] {
    if constexpr (std::is_same_v<decltype(fn()), cudaError_t>) {
      TB_CHECK_CUDA(fn());
    } else {
      fn();
      TB_CHECK_CUDA(cudaGetLastError());
    }
  };
  run();
  TB_CHECK_CUDA(cudaDeviceSynchronize());
  cudaEvent_t a, b;
  TB_CHECK_CUDA(cudaEventCreate(&a));
  TB_CHECK_CUDA(cudaEventCreate(&b));
  TB_CHECK_CUDA(cudaEventRecord(a));
  for (int i = 0; i < iters; ++i) run();
  TB_CHECK_CUDA(cudaEventRecord(b));
  TB_CHECK_CUDA(cudaEventSynchronize(b));
  float ms = 0.0f;
  TB_CHECK_CUDA(cudaEventElapsedTime(&ms, a, b));
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  return ms / iters;
}

// Device memory the bench never frees before exit (at least 256 bytes, so empty views work).
inline void* dalloc(int64_t bytes) {
  void* p = nullptr;
  TB_CHECK_CUDA(cudaMalloc(&p, bytes > 256 ? bytes : 256));
  return p;
}

// A device copy of `host` (never freed before exit).
template <typename T>
T* upload(const std::vector<T>& host) {
  T* p = static_cast<T*>(dalloc(static_cast<int64_t>(host.size() * sizeof(T))));
  TB_CHECK_CUDA(cudaMemcpy(p, host.data(), host.size() * sizeof(T), cudaMemcpyHostToDevice));
  return p;
}

// NMSE of `got` against `ref` (device f32 arrays of n values), for cross-checks between paths.
inline double nmse_dev(const float* ref, const float* got, int64_t n) {
  std::vector<float> a(n), b(n);
  TB_CHECK_CUDA(cudaMemcpy(a.data(), ref, n * 4, cudaMemcpyDeviceToHost));
  TB_CHECK_CUDA(cudaMemcpy(b.data(), got, n * 4, cudaMemcpyDeviceToHost));
  double err = 0, den = 0;
  for (int64_t i = 0; i < n; ++i) {
    err += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(a[i]) * a[i];
  }
  return den > 0 ? err / den : err;
}

static __global__ void bench_copy_kernel(const float4* in, float4* out, int64_t n) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < n;
       i += int64_t(gridDim.x) * blockDim.x) {
    out[i] = in[i];
  }
}

// Read + write bytes per second of a 2 x 1 GiB device copy, in GB/s: the HBM floor.
inline double measure_hbm_gbs(int num_sms) {
  const int64_t bytes = 1ll << 30;
  float4 *a = nullptr, *b = nullptr;
  TB_CHECK_CUDA(cudaMalloc(&a, bytes));
  TB_CHECK_CUDA(cudaMalloc(&b, bytes));
  TB_CHECK_CUDA(cudaMemset(a, 0x3c, bytes));
  const double ms = time_ms([&] {
    bench_copy_kernel<<<num_sms * 8, 512>>>(a, b, bytes / 16);
    return cudaGetLastError();
  });
  TB_CHECK_CUDA(cudaFree(a));
  TB_CHECK_CUDA(cudaFree(b));
  return 2.0 * bytes / ms / 1e6;
}

}  // namespace tessera::bench
