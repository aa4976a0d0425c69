// Spin-then-sleep worker pool (see thread_pool.h for why it spins).
#include "tessera/core/thread_pool.h"

#include <algorithm>
#include <memory>

#include "tessera/core/check.h"

#if defined(__x86_64__) || defined(_M_X64)
#include <immintrin.h>
#define TESSERA_CPU_RELAX() _mm_pause()
#else
#define TESSERA_CPU_RELAX() ((void)0)
#endif

namespace tessera {
namespace {
// ~1-3 ms of spinning before a worker sleeps: covers the gaps between ops of a decode step.
constexpr int kSpinIterations = 1 << 16;
// NOTE: past a short burst of pause instructions, yield: when the machine is oversubscribed
// (parallel test runs, other processes) a pure spin would hold the core that the thread we
// wait for needs.
constexpr int kPauseBeforeYield = 1 << 10;

inline void relax(int spin) {
  if (spin < kPauseBeforeYield) {
    TESSERA_CPU_RELAX();
  } else {
    std::this_thread::yield();
  }
}

std::mutex g_default_pool_mutex;
std::unique_ptr<ThreadPool> g_default_pool;
int g_default_pool_threads = 0;
}  // namespace

ThreadPool::ThreadPool(int num_threads) {
  if (num_threads <= 0) num_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  num_threads_ = num_threads;
  workers_.reserve(num_threads_ - 1);
  for (int i = 1; i < num_threads_; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::worker_loop(int index) {
  uint64_t seen = 0;
  while (true) {
    uint64_t gen = generation_.load(std::memory_order_acquire);
    for (int spin = 0; gen == seen && spin < kSpinIterations; ++spin) {
      relax(spin);
      gen = generation_.load(std::memory_order_acquire);
    }
    if (gen == seen) {
      std::unique_lock<std::mutex> lock(mutex_);
      sleepers_.fetch_add(1);
      wake_.wait(lock, [&] { return generation_.load() != seen; });
      sleepers_.fetch_sub(1);
      gen = generation_.load();
    }
    seen = gen;
    if (stop_.load()) return;
    (*job_)(index, num_threads_);
    pending_.fetch_sub(1, std::memory_order_acq_rel);
  }
}

void ThreadPool::run(const std::function<void(int, int)>& fn) {
  if (num_threads_ == 1) {
    fn(0, 1);
    return;
  }
  job_ = &fn;
  pending_.store(num_threads_ - 1, std::memory_order_relaxed);
  generation_.fetch_add(1);  // seq_cst: pairs with the sleepers_ check below
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mutex_);
    wake_.notify_all();
  }
  fn(0, num_threads_);
  for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) relax(spin);
}

void ThreadPool::parallel_for(int64_t n, int64_t grain,
                              const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(1, grain);
  const int64_t num_grains = (n + grain - 1) / grain;
  const int64_t num_chunks = std::min<int64_t>(num_threads_, num_grains);
  if (num_chunks <= 1) {
    fn(0, n);
    return;
  }
  const int64_t grains_per_chunk = num_grains / num_chunks;
  const int64_t extra = num_grains % num_chunks;
  run([&](int thread, int) {
    if (thread >= num_chunks) return;
    const int64_t first = thread * grains_per_chunk + std::min<int64_t>(thread, extra);
    const int64_t count = grains_per_chunk + (thread < extra ? 1 : 0);
    const int64_t begin = first * grain;
    const int64_t end = std::min(n, (first + count) * grain);
    if (begin < end) fn(begin, end);
  });
}

ThreadPool& default_thread_pool() {
  std::lock_guard<std::mutex> lock(g_default_pool_mutex);
  if (!g_default_pool) g_default_pool = std::make_unique<ThreadPool>(g_default_pool_threads);
  return *g_default_pool;
}

bool configure_default_thread_pool(int num_threads) {
  std::lock_guard<std::mutex> lock(g_default_pool_mutex);
  if (g_default_pool) return g_default_pool->num_threads() == num_threads || num_threads == 0;
  g_default_pool_threads = num_threads;
  return true;
}

}  // namespace tessera
