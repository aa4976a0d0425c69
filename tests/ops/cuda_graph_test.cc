// Step graphs on the CUDA backend (docs/cuda.md "CUDA graphs"): a captured sequence of ops
// replays to the eager result, reads whatever its device operands hold at replay time (new
// inputs, new metadata), and a capture that meets a host operand or a wait fails cleanly and
// leaves the backend usable. Each test skips without a GPU (label gpu: names end in __cuda).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "tessera/backend/backend.h"
#include "tessera/backend/cuda_backend.h"

namespace tessera::backend {
namespace {

std::unique_ptr<CudaBackend> cuda_or_null(std::string* why) {
  Result<std::unique_ptr<CudaBackend>> made = make_cuda_backend();
  if (!made.ok()) {
    *why = made.status().message();
    return nullptr;
  }
  return std::move(made).value();
}

#define TESSERA_CUDA_OR_SKIP(name)                         \
  std::string why_;                                        \
  std::unique_ptr<CudaBackend> name = cuda_or_null(&why_); \
  if (!name) GTEST_SKIP() << "no CUDA device: " << why_

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

// A device tensor holding `host` (f32 or i32 by T).
template <typename T>
BackendTensor to_device(Backend& b, std::vector<T>& host, std::initializer_list<int64_t> shape) {
  const DType dtype = sizeof(T) == 4 && std::is_integral_v<T> ? DType::kI32 : DType::kF32;
  Result<BackendTensor> up = b.upload(Tensor(host.data(), dtype, shape));
  EXPECT_TRUE(up.ok()) << up.status().message();
  return std::move(up).value();
}

std::vector<float> to_host(Backend& b, const Tensor& t) {
  std::vector<float> h(static_cast<size_t>(t.numel()));
  const Status s = b.download(t, Tensor(h.data(), DType::kF32, t.shape().data(), t.ndim()));
  EXPECT_TRUE(s.ok()) << s.message();
  return h;
}

void expect_close(const std::vector<float>& got, const std::vector<float>& want) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 1e-5f * (1.0f + std::fabs(want[i]))) << "at " << i;
  }
}

std::span<const int32_t> span_of(const BackendTensor& t) {
  return {t.view.data_as<const int32_t>(), static_cast<size_t>(t.view.numel())};
}

// rms_norm -> matmul -> add -> rope (device positions) on device operands.
struct DenseStep {
  static constexpr int64_t kT = 7, kK = 64, kN = 96;
  BackendTensor x, w_norm, w, bias, positions, normed, proj, out;
  RopeParams rope;

  explicit DenseStep(Backend& b) {
    auto hx = random_floats(kT * kK, 1), hn = random_floats(kK, 2), hw = random_floats(kN * kK, 3),
         hb = random_floats(kT * kN, 4);
    std::vector<int32_t> hp = {0, 3, 9, 27, 81, 100, 4095};
    x = to_device(b, hx, {kT, kK});
    w_norm = to_device(b, hn, {kK});
    w = to_device(b, hw, {kN, kK});
    bias = to_device(b, hb, {kT, kN});
    positions = to_device(b, hp, {kT});
    normed = b.allocate(DType::kF32, {kT, kK}).value();
    proj = b.allocate(DType::kF32, {kT, kN}).value();
    out = b.allocate(DType::kF32, {kT, kN}).value();
    rope.rot_dim = 32;
    rope.theta = 500000.0f;
  }

  Status run(Backend& b) {
    TESSERA_RETURN_IF_ERROR(b.rms_norm(x.view, w_norm.view, 1e-5f, normed.view));
    TESSERA_RETURN_IF_ERROR(b.matmul(normed.view, w.view, proj.view));
    TESSERA_RETURN_IF_ERROR(b.add(proj.view, bias.view, out.view));
    return run_rope(b);
  }
  // [T, 96] as [T, 3 heads, 32]: rotates every head of `out` in place.
  Status run_rope(Backend& b) {
    Tensor heads(out.view.data(), DType::kF32, {kT, 3, 32});
    return b.rope(heads, span_of(positions), rope);
  }
};

TEST(CudaGraph, CaptureReplayEqualsEagerAndReadsNewInputs__cuda) {
  TESSERA_CUDA_OR_SKIP(b);
  ASSERT_TRUE(b->supports_graphs());
  DenseStep step(*b);
  ASSERT_TRUE(step.run(*b).ok());  // warm-up: creates the rope table
  const std::vector<float> eager = to_host(*b, step.out.view);

  ASSERT_TRUE(b->begin_capture().ok());
  const Status recorded = step.run(*b);
  Result<std::unique_ptr<StepGraph>> graph = b->end_capture();
  ASSERT_TRUE(recorded.ok()) << recorded.message();
  ASSERT_TRUE(graph.ok()) << graph.status().message();

  std::vector<float> zeros(static_cast<size_t>(step.out.view.numel()), 0.0f);
  ASSERT_TRUE(
      b->copy(Tensor(zeros.data(), DType::kF32, {DenseStep::kT, DenseStep::kN}), step.out.view)
          .ok());
  ASSERT_TRUE(b->replay(**graph).ok());
  expect_close(to_host(*b, step.out.view), eager);

  // New input through copy() from the host (the runner's metadata path), then replay vs eager.
  auto hx = random_floats(DenseStep::kT * DenseStep::kK, 11);
  ASSERT_TRUE(
      b->copy(Tensor(hx.data(), DType::kF32, {DenseStep::kT, DenseStep::kK}), step.x.view).ok());
  ASSERT_TRUE(b->replay(**graph).ok());
  const std::vector<float> replayed = to_host(*b, step.out.view);
  ASSERT_TRUE(step.run(*b).ok());
  expect_close(replayed, to_host(*b, step.out.view));
}

// embedding (device ids) -> kv_append (device slots) -> paged_attention (device metadata).
struct PagedStep {
  static constexpr int64_t kSeqs = 3, kHq = 4, kHkv = 2, kD = 64, kBlocks = 8, kBlockSize = 16;
  static constexpr int64_t kWidth = 2, kVocab = 50, kHidden = kHq * kD;
  BackendTensor table, ids, slots, query_start, seq_lens, block_tables, k_cache, v_cache, q, kv,
      out;

  explicit PagedStep(Backend& b) {
    auto ht = random_floats(kVocab * kHidden, 21);
    auto hk = random_floats(kBlocks * kBlockSize * kHkv * kD, 22);
    auto hv = random_floats(kBlocks * kBlockSize * kHkv * kD, 23);
    auto hkv = random_floats(kSeqs * kHkv * kD, 24);
    table = to_device(b, ht, {kVocab, kHidden});
    k_cache = to_device(b, hk, {kBlocks, kBlockSize, kHkv, kD});
    v_cache = to_device(b, hv, {kBlocks, kBlockSize, kHkv, kD});
    kv = to_device(b, hkv, {kSeqs, kHkv, kD});
    q = b.allocate(DType::kF32, {kSeqs, kHidden}).value();
    out = b.allocate(DType::kF32, {kSeqs, kHq, kD}).value();
    std::vector<int32_t> h_ids = {3, 41, 7}, h_qs = {0, 1, 2, 3}, h_lens = {5, 17, 30};
    std::vector<int32_t> h_bt = {6, 0, 2, 5, 1, 7};
    std::vector<int32_t> h_slots = slots_for(h_lens, h_bt);
    ids = to_device(b, h_ids, {kSeqs});
    slots = to_device(b, h_slots, {kSeqs});
    query_start = to_device(b, h_qs, {kSeqs + 1});
    seq_lens = to_device(b, h_lens, {kSeqs});
    block_tables = to_device(b, h_bt, {kSeqs, kWidth});
  }

  // Each decode token's K/V goes to the slot of its last position.
  static std::vector<int32_t> slots_for(const std::vector<int32_t>& lens,
                                        const std::vector<int32_t>& bt) {
    std::vector<int32_t> s;
    for (size_t i = 0; i < lens.size(); ++i) {
      const int32_t pos = lens[i] - 1;
      s.push_back(bt[i * kWidth + pos / kBlockSize] * kBlockSize + pos % kBlockSize);
    }
    return s;
  }

  Status run(Backend& b) {
    TESSERA_RETURN_IF_ERROR(b.embedding(table.view, span_of(ids), q.view));
    Tensor k3(kv.view.data(), DType::kF32, {kSeqs, kHkv, kD});
    TESSERA_RETURN_IF_ERROR(b.kv_append(k3, k3, span_of(slots), k_cache.view, v_cache.view));
    Tensor q3(q.view.data(), DType::kF32, {kSeqs, kHq, kD});
    return b.paged_attention(q3, k_cache.view, v_cache.view, span_of(query_start),
                             span_of(seq_lens), block_tables.view, 0.125f, out.view);
  }

  // The same step with every metadata span on the host (the staged path) for reference.
  Status run_host(Backend& b, std::vector<int32_t> h_ids, std::vector<int32_t> h_lens,
                  std::vector<int32_t> h_bt) {
    const std::vector<int32_t> h_qs = {0, 1, 2, 3}, h_slots = slots_for(h_lens, h_bt);
    TESSERA_RETURN_IF_ERROR(b.embedding(table.view, h_ids, q.view));
    Tensor k3(kv.view.data(), DType::kF32, {kSeqs, kHkv, kD});
    TESSERA_RETURN_IF_ERROR(b.kv_append(k3, k3, h_slots, k_cache.view, v_cache.view));
    Tensor q3(q.view.data(), DType::kF32, {kSeqs, kHq, kD});
    Tensor bt(h_bt.data(), DType::kI32, {kSeqs, kWidth});
    return b.paged_attention(q3, k_cache.view, v_cache.view, h_qs, h_lens, bt, 0.125f, out.view);
  }
};

TEST(CudaGraph, PagedStepWithDeviceMetadataReplaysNewMetadata__cuda) {
  TESSERA_CUDA_OR_SKIP(b);
  PagedStep step(*b);
  ASSERT_TRUE(step.run_host(*b, {3, 41, 7}, {5, 17, 30}, {6, 0, 2, 5, 1, 7}).ok());
  const std::vector<float> host_path = to_host(*b, step.out.view);
  ASSERT_TRUE(step.run(*b).ok());  // eager with device metadata
  const std::vector<float> eager = to_host(*b, step.out.view);
  expect_close(eager, host_path);

  ASSERT_TRUE(b->begin_capture().ok());
  const Status recorded = step.run(*b);
  Result<std::unique_ptr<StepGraph>> graph = b->end_capture();
  ASSERT_TRUE(recorded.ok()) << recorded.message();
  ASSERT_TRUE(graph.ok()) << graph.status().message();
  ASSERT_TRUE(b->replay(**graph).ok());
  expect_close(to_host(*b, step.out.view), eager);

  // Next "step": new ids, lengths and tables written into the same device buffers.
  std::vector<int32_t> ids = {9, 0, 49}, lens = {1, 32, 16}, bt = {4, 3, 1, 0, 7, 6};
  std::vector<int32_t> slots = PagedStep::slots_for(lens, bt);
  ASSERT_TRUE(b->copy(Tensor(ids.data(), DType::kI32, {3}), step.ids.view).ok());
  ASSERT_TRUE(b->copy(Tensor(lens.data(), DType::kI32, {3}), step.seq_lens.view).ok());
  ASSERT_TRUE(b->copy(Tensor(bt.data(), DType::kI32, {3, 2}), step.block_tables.view).ok());
  ASSERT_TRUE(b->copy(Tensor(slots.data(), DType::kI32, {3}), step.slots.view).ok());
  ASSERT_TRUE(b->replay(**graph).ok());
  const std::vector<float> replayed = to_host(*b, step.out.view);
  ASSERT_TRUE(step.run_host(*b, ids, lens, bt).ok());
  expect_close(replayed, to_host(*b, step.out.view));
}

TEST(CudaGraph, AttentionWithDevicePositionsEqualsHostPositions__cuda) {
  TESSERA_CUDA_OR_SKIP(b);
  constexpr int64_t kT = 5, kS = 40, kH = 2, kD = 32;
  auto hq = random_floats(kT * kH * kD, 31), hk = random_floats(kS * kH * kD, 32),
       hv = random_floats(kS * kH * kD, 33);
  std::vector<int32_t> hp = {10, 11, 12, 13, 14};
  BackendTensor q = to_device(*b, hq, {kT, kH, kD}), k = to_device(*b, hk, {kS, kH, kD}),
                v = to_device(*b, hv, {kS, kH, kD}), p = to_device(*b, hp, {kT});
  BackendTensor out = b->allocate(DType::kF32, {kT, kH, kD}).value();
  ASSERT_TRUE(b->attention(q.view, k.view, v.view, hp, 0.2f, out.view).ok());
  const std::vector<float> host_path = to_host(*b, out.view);
  ASSERT_TRUE(b->attention(q.view, k.view, v.view, span_of(p), 0.2f, out.view).ok());
  expect_close(to_host(*b, out.view), host_path);
}

TEST(CudaGraph, HostOperandDuringCaptureFailsAndTheBackendRecovers__cuda) {
  TESSERA_CUDA_OR_SKIP(b);
  DenseStep step(*b);
  ASSERT_TRUE(step.run(*b).ok());
  const std::vector<float> eager = to_host(*b, step.out.view);

  auto hx = random_floats(DenseStep::kT * DenseStep::kK, 5);
  ASSERT_TRUE(b->begin_capture().ok());
  ASSERT_TRUE(b->rms_norm(step.x.view, step.w_norm.view, 1e-5f, step.normed.view).ok());
  const Status host = b->rms_norm(Tensor(hx.data(), DType::kF32, {DenseStep::kT, DenseStep::kK}),
                                  step.w_norm.view, 1e-5f, step.normed.view);
  EXPECT_FALSE(host.ok());
  EXPECT_NE(host.message().find("host memory"), std::string::npos) << host.message();
  EXPECT_FALSE(b->add(step.proj.view, step.bias.view, step.out.view).ok());  // still failed
  Result<std::unique_ptr<StepGraph>> graph = b->end_capture();
  ASSERT_FALSE(graph.ok());
  EXPECT_EQ(graph.status().message(), host.message());

  ASSERT_TRUE(step.run(*b).ok());  // eager again, same stream
  expect_close(to_host(*b, step.out.view), eager);
  EXPECT_TRUE(b->synchronize().ok());
}

TEST(CudaGraph, WaitsAndMissingTablesFailDuringCapture__cuda) {
  TESSERA_CUDA_OR_SKIP(b);
  DenseStep step(*b);
  std::vector<float> host(static_cast<size_t>(step.out.view.numel()));
  ASSERT_TRUE(b->begin_capture().ok());
  const Status down =
      b->download(step.out.view, Tensor(host.data(), DType::kF32, {DenseStep::kT, DenseStep::kN}));
  EXPECT_FALSE(down.ok());
  EXPECT_FALSE(b->end_capture().ok());

  ASSERT_TRUE(b->begin_capture().ok());
  EXPECT_FALSE(b->synchronize().ok());
  EXPECT_FALSE(b->end_capture().ok());

  ASSERT_TRUE(b->begin_capture().ok());  // no eager rope ran yet: its table is missing
  const Status rope = step.run_rope(*b);
  EXPECT_FALSE(rope.ok());
  EXPECT_NE(rope.message().find("rope"), std::string::npos) << rope.message();
  EXPECT_FALSE(b->end_capture().ok());

  ASSERT_TRUE(step.run(*b).ok());
  ASSERT_TRUE(b->synchronize().ok());
  EXPECT_FALSE(b->end_capture().ok());  // nothing open
}

}  // namespace
}  // namespace tessera::backend
