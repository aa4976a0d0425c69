// ThreadPool: a fixed set of workers for data-parallel kernels on the CPU.
// parallel_for splits [0, n) into `num_threads` contiguous chunks and runs them at once,
// the caller taking chunk 0. Workers spin briefly before sleeping, because a decode step runs
// hundreds of short parallel regions and a futex wake per region costs more than the work.
// Invariant: parallel_for is called from one thread at a time and returns after every chunk ran.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace tessera {

class ThreadPool {
 public:
  // num_threads counts the caller; 0 means hardware concurrency.
  explicit ThreadPool(int num_threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int num_threads() const { return num_threads_; }

  // fn(thread_index, num_threads): each participant computes its own share.
  void run(const std::function<void(int, int)>& fn);
  // fn(begin, end) over contiguous chunks of [0, n), at most one chunk per thread;
  // chunks are multiples of `grain` except the last.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  void worker_loop(int index);

  int num_threads_ = 1;
  std::vector<std::thread> workers_;
  const std::function<void(int, int)>* job_ = nullptr;
  std::atomic<uint64_t> generation_{0};
  std::atomic<int> pending_{0};
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable wake_;
  std::atomic<int> sleepers_{0};
};

// The process-wide pool used by the CPU backend (created on first use).
ThreadPool& default_thread_pool();
// Set before first use; 0 = hardware concurrency. Returns false if the pool already exists.
bool configure_default_thread_pool(int num_threads);

}  // namespace tessera
