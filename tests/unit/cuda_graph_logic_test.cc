// Host checks of the CUDA backend's capture scratch policy
// (src/backend/cuda/capture_scratch_plan.h): placements of one outermost op never overlap and stay
// inside their chunk, each outermost op rewinds to the newest chunk, chunks only grow, and an eager
// high-water mark pre-sizes captures.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "src/backend/cuda/capture_scratch_plan.h"

namespace tessera::backend::cuda {
namespace {

// Places `bytes` as the CUDA arena does: grow first when needed. Returns {chunk, offset}.
std::pair<int, int64_t> take(CaptureScratchPlan& plan, int64_t bytes) {
  if (const int64_t grow = plan.grow_bytes(bytes); grow > 0) plan.add_chunk(grow);
  const int64_t offset = plan.place(bytes);
  return {plan.current_chunk(), offset};
}

TEST(CaptureScratchPlan, FirstPlacementAddsAMinimumChunkAndAligns) {
  CaptureScratchPlan plan;
  EXPECT_EQ(plan.grow_bytes(100), CaptureScratchPlan::kMinChunkBytes);
  plan.begin_op();
  EXPECT_EQ(take(plan, 100), std::make_pair(0, int64_t{0}));
  EXPECT_EQ(take(plan, 1), std::make_pair(0, int64_t{256}));
  EXPECT_EQ(take(plan, 0), std::make_pair(0, int64_t{512}));
  plan.end_op();
  EXPECT_EQ(plan.num_chunks(), 1);
  EXPECT_EQ(CaptureScratchPlan::rounded(257), 512);
}

TEST(CaptureScratchPlan, OutermostOpsRewindNestedOpsDoNot) {
  CaptureScratchPlan plan;
  plan.begin_op();
  take(plan, 1000);
  plan.begin_op();  // nested: keeps going after the outer op's scratch
  EXPECT_EQ(take(plan, 10).second, 1024);
  plan.end_op();
  EXPECT_EQ(take(plan, 10).second, 1280);
  plan.end_op();
  plan.begin_op();  // the next op reuses the same bytes: the previous op is done by then
  EXPECT_EQ(take(plan, 10).second, 0);
  plan.end_op();
  EXPECT_EQ(plan.depth(), 0);
}

TEST(CaptureScratchPlan, GrowingKeepsOldChunksAndAtLeastDoubles) {
  CaptureScratchPlan plan;
  plan.begin_op();
  take(plan, 3 << 20);
  const auto [chunk, offset] = take(plan, 2 << 20);  // 3 + 2 MiB > 4 MiB: a new chunk
  EXPECT_EQ(chunk, 1);
  EXPECT_EQ(offset, 0);
  EXPECT_EQ(plan.chunk_bytes(0), CaptureScratchPlan::kMinChunkBytes);
  EXPECT_EQ(plan.chunk_bytes(1), 2 * CaptureScratchPlan::kMinChunkBytes);
  const auto big = take(plan, 100ll << 20);  // larger than doubling: exactly what is needed
  EXPECT_EQ(big.first, 2);
  EXPECT_EQ(plan.chunk_bytes(2), 100ll << 20);
  plan.end_op();
  plan.begin_op();  // later ops start in the newest (largest) chunk
  EXPECT_EQ(take(plan, 5 << 20), std::make_pair(2, int64_t{0}));
  plan.end_op();
  EXPECT_EQ(plan.num_chunks(), 3);
}

TEST(CaptureScratchPlan, EagerHighWaterPresizesTheNextCapture) {
  CaptureScratchPlan plan;
  EXPECT_EQ(plan.presize_bytes(), 0);
  plan.note_eager_op(1 << 20);
  EXPECT_EQ(plan.presize_bytes(), CaptureScratchPlan::kMinChunkBytes);
  plan.add_chunk(plan.presize_bytes());
  EXPECT_EQ(plan.presize_bytes(), 0);
  plan.note_eager_op(9 << 20);
  plan.note_eager_op(2 << 20);  // a smaller op later does not lower the mark
  EXPECT_EQ(plan.presize_bytes(), 9 << 20);
  plan.add_chunk(plan.presize_bytes());
  plan.begin_op();
  EXPECT_EQ(plan.grow_bytes(9 << 20), 0);  // an op as large as the eager one fits
  plan.end_op();
}

TEST(CaptureScratchPlan, RandomOpsNeverOverlapWithinAnOuterOp) {
  std::mt19937 rng(7);
  CaptureScratchPlan plan;
  std::vector<int64_t> chunk_sizes;
  for (int op = 0; op < 2000; ++op) {
    struct Range {
      int chunk;
      int64_t begin, end;
    };
    std::vector<Range> live;
    plan.begin_op();
    const int nested_at = static_cast<int>(rng() % 4);
    const int count = 1 + static_cast<int>(rng() % 5);
    for (int i = 0; i < count; ++i) {
      if (i == nested_at) plan.begin_op();
      const int64_t bytes = (rng() % 8 == 0) ? static_cast<int64_t>(rng() % (16 << 20))
                                             : static_cast<int64_t>(rng() % 70000);
      const auto [chunk, offset] = take(plan, bytes);
      const Range r{chunk, offset, offset + CaptureScratchPlan::rounded(bytes)};
      ASSERT_EQ(offset % CaptureScratchPlan::kAlign, 0);
      ASSERT_LE(r.end, plan.chunk_bytes(chunk));
      for (const Range& o : live) {
        ASSERT_FALSE(o.chunk == r.chunk && o.begin < r.end && r.begin < o.end)
            << "op " << op << " placement " << i;
      }
      live.push_back(r);
    }
    if (nested_at < count) plan.end_op();
    plan.end_op();
    ASSERT_EQ(plan.depth(), 0);
  }
  for (int c = 1; c < plan.num_chunks(); ++c) {
    EXPECT_GE(plan.chunk_bytes(c), 2 * plan.chunk_bytes(c - 1));
  }
  EXPECT_LE(plan.num_chunks(), 8);
}

}  // namespace
}  // namespace tessera::backend::cuda
