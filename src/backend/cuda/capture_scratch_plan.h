// Placement policy of the CUDA backend's capture scratch arena (docs/cuda.md "CUDA graphs"), plain
// C++ without CUDA headers so tests/unit checks it. Scratch an op takes while a step graph is
// captured lives in persistent chunks the graph keeps pointing into. Graphs replay on the
// backend's one stream, one at a time, and a captured step is a chain of ops, so every
// outermost op starts again at offset 0 of the newest chunk.
// Invariant: chunks are only added, never dropped or resized; within one outermost op (nested
// ops included) placements never overlap.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace tessera::backend::cuda {

class CaptureScratchPlan {
 public:
  static constexpr int64_t kAlign = 256;                // bytes; cudaMalloc bases are aligned so
  static constexpr int64_t kMinChunkBytes = 4ll << 20;  // smallest chunk added

  // Bytes one placement of `bytes` occupies (at least 16, rounded up to kAlign).
  static int64_t rounded(int64_t bytes) {
    const int64_t b = std::max<int64_t>(bytes, 16);
    return (b + kAlign - 1) / kAlign * kAlign;
  }

  // An op's scratch scope (Staging's lifetime). The outermost one rewinds to offset 0 of the
  // newest chunk: the previous op's scratch is dead once this op's work starts.
  void begin_op() {
    if (depth_++ == 0) offset_ = 0;
  }
  void end_op() {
    if (depth_ > 0) --depth_;
  }

  // Bytes of the chunk to add before `bytes` can be placed; 0 when it fits the newest chunk.
  // A new chunk at least doubles the newest one, so a capture adds O(log) chunks.
  int64_t grow_bytes(int64_t bytes) const {
    const int64_t need = rounded(bytes);
    const int64_t current = chunks_.empty() ? 0 : chunks_.back();
    if (offset_ + need <= current) return 0;
    return std::max({need, 2 * current, kMinChunkBytes});
  }

  // Records a chunk of `bytes` the caller allocated: it becomes the newest, filled from 0.
  void add_chunk(int64_t bytes) {
    chunks_.push_back(bytes);
    offset_ = 0;
  }

  // Places `bytes` in the newest chunk (call only when grow_bytes(bytes) == 0); returns the
  // offset in chunk current_chunk().
  int64_t place(int64_t bytes) {
    const int64_t at = offset_;
    offset_ += rounded(bytes);
    return at;
  }

  // Eager ops report their scratch (sum of rounded placements); a capture of the same step
  // needs as much per op.
  void note_eager_op(int64_t bytes) { high_water_ = std::max(high_water_, bytes); }
  // Bytes of the chunk to add before a capture so that every op seen so far fits without
  // allocating while capturing; 0 when the newest chunk is large enough.
  int64_t presize_bytes() const {
    const int64_t current = chunks_.empty() ? 0 : chunks_.back();
    if (high_water_ <= current) return 0;
    return std::max({high_water_, 2 * current, kMinChunkBytes});
  }

  int num_chunks() const { return static_cast<int>(chunks_.size()); }
  int current_chunk() const { return num_chunks() - 1; }
  int64_t chunk_bytes(int i) const { return chunks_[static_cast<size_t>(i)]; }
  int64_t offset() const { return offset_; }
  int depth() const { return depth_; }

 private:
  std::vector<int64_t> chunks_;  // sizes in bytes, oldest first
  int64_t offset_ = 0;           // next free byte of the newest chunk
  int depth_ = 0;
  int64_t high_water_ = 0;
};

}  // namespace tessera::backend::cuda
