// Shared helpers of the CPU benchmarks: timing, the streaming read bandwidth their floors divide
// by, and the matmul benches' report row. Invariant: the bandwidth buffer is far larger than
// the caches, so the figure is DRAM's.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <vector>

#include "tessera/core/thread_pool.h"

namespace tessera::bench {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Seconds per call of fn(i), i counting calls, after one warm-up pass over `copies` (weight
// copies that rotate so an M = 1 call streams from DRAM, not cache); at least 3 calls and
// 0.15 s (quick) or 0.6 s.
inline double time_calls(int64_t copies, bool quick, const std::function<void(int64_t)>& fn) {
  for (int64_t i = 0; i < copies; ++i) fn(i);
  const double min_seconds = quick ? 0.15 : 0.6;
  int64_t iters = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double s = 0.0;
  while (s < min_seconds || iters < 3) {
    fn(iters++);
    s = seconds_since(t0);
  }
  return s / iters;
}

// One matmul timing row: time, weight GB/s against the bandwidth floor, GFLOP/s, and the time
// relative to the run's baseline kernel (`base_name`).
inline void print_matmul_row(const char* what, int64_t m, int64_t n, int64_t k, int64_t w_bytes,
                             double sec, double bw_gbs, double base_sec, const char* base_name) {
  const double gbs = w_bytes / sec / 1e9;
  std::printf(
      "%-16s M=%-4ld N=%-5ld K=%-5ld %9.1f us %7.2f GB/s (%3.0f%% of bw, floor %7.1f us)"
      " %8.2f GFLOP/s  x%.2f %s time\n",
      what, static_cast<long>(m), static_cast<long>(n), static_cast<long>(k), sec * 1e6, gbs,
      100.0 * gbs / bw_gbs, w_bytes / (bw_gbs * 1e9) * 1e6, 2.0 * m * n * k / sec / 1e9,
      sec / base_sec, base_name);
}

// GB/s of `pool`'s threads each summing its share of a `bytes` buffer, best of `reps`.
inline double read_bandwidth_gbs(ThreadPool& pool, int64_t bytes = int64_t{256} << 20,
                                 int reps = 5) {
  const int64_t n = bytes / 8;
  std::vector<uint64_t> buf(static_cast<size_t>(n), 1);
  std::vector<uint64_t> sums(static_cast<size_t>(pool.num_threads()) * 8);
  double best = 0.0;
  for (int rep = 0; rep < reps; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    pool.run([&](int t, int nt) {
      const int64_t b = n * t / nt, e = n * (t + 1) / nt;
      uint64_t s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // four chains: not latency-bound
      for (int64_t i = b; i + 4 <= e; i += 4) {
        s0 += buf[i];
        s1 += buf[i + 1];
        s2 += buf[i + 2];
        s3 += buf[i + 3];
      }
      sums[static_cast<size_t>(t) * 8] = s0 + s1 + s2 + s3;  // a cache line each: no sharing
    });
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, static_cast<double>(n * 8) / s / 1e9);
  }
  return best;
}

// The same over a pool of `threads` threads made for the measurement.
inline double read_bandwidth_gbs(int threads, int64_t bytes = int64_t{256} << 20, int reps = 5) {
  ThreadPool pool(threads);
  return read_bandwidth_gbs(pool, bytes, reps);
}

}  // namespace tessera::bench
