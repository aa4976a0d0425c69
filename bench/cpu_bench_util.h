// Shared helpers of the CPU benchmarks: the streaming read bandwidth that their floors divide
// by. Invariant: the buffer is far larger than the caches, so the figure is DRAM's.
#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <vector>

#include "tessera/core/thread_pool.h"

namespace tessera::bench {

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
