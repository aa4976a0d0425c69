// Step graphs on the emulated device: capture records ops without running them, replay runs
// them on the captured addresses and reads whatever those hold then (as CUDA graphs do), and a
// capture rejects host operands and host-side calls, poisoning itself with the first error.
// Every comparison with eager execution is bitwise (same inner backend, same op order).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <vector>

#include "tessera/backend/backend.h"
#include "tessera/backend/emulated_device.h"

namespace tessera::backend {
namespace {

using Maker = std::unique_ptr<Backend> (*)();

std::unique_ptr<Backend> emulated(Maker inner = make_cpu_backend) {
  return make_emulated_device_backend(inner());
}

std::vector<float> random_floats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

BackendTensor upload_f32(Backend& be, std::vector<float> host,
                         std::initializer_list<int64_t> shape) {
  Result<BackendTensor> t = be.upload(Tensor(host.data(), DType::kF32, shape));
  TESSERA_CHECK(t.ok(), "upload: {}", t.status().to_string());
  return std::move(t).value();
}

BackendTensor upload_i32(Backend& be, std::vector<int32_t> host,
                         std::initializer_list<int64_t> shape) {
  Result<BackendTensor> t = be.upload(Tensor(host.data(), DType::kI32, shape));
  TESSERA_CHECK(t.ok(), "upload: {}", t.status().to_string());
  return std::move(t).value();
}

// Overwrites an existing backend tensor from host values (copy with a host source).
template <typename T>
void write(Backend& be, const BackendTensor& dst, std::vector<T> host) {
  TESSERA_CHECK(static_cast<int64_t>(host.size()) == dst.view.numel(), "size");
  const Tensor host_view(host.data(), dst.view.dtype(), dst.view.shape().data(), dst.view.ndim());
  ASSERT_TRUE(be.copy(host_view, dst.view).ok());
}

template <typename T = float>
std::vector<T> download(Backend& be, const BackendTensor& src) {
  std::vector<T> host(static_cast<size_t>(src.view.numel()));
  const Tensor dst(host.data(), src.view.dtype(), src.view.shape().data(), src.view.ndim());
  const Status s = be.download(src.view, dst);
  TESSERA_CHECK(s.ok(), "download: {}", s.to_string());
  return host;
}

// A span over an i32 backend tensor (its data is arena memory: never read on the host).
std::span<const int32_t> span_of(const BackendTensor& t) {
  return {t.view.data_as<const int32_t>(), static_cast<size_t>(t.view.numel())};
}

bool bitwise_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

std::unique_ptr<StepGraph> capture(Backend& be, const std::function<Status()>& ops) {
  EXPECT_TRUE(be.begin_capture().ok());
  const Status s = ops();
  EXPECT_TRUE(s.ok()) << s.to_string();
  Result<std::unique_ptr<StepGraph>> graph = be.end_capture();
  TESSERA_CHECK(graph.ok(), "end_capture: {}", graph.status().to_string());
  return std::move(graph).value();
}

// Runs `ops` under a capture expected to fail; returns end_capture's error message.
std::string failed_capture(Backend& be, const std::function<Status()>& ops) {
  EXPECT_TRUE(be.begin_capture().ok());
  const Status op_status = ops();
  Result<std::unique_ptr<StepGraph>> graph = be.end_capture();
  EXPECT_FALSE(op_status.ok());
  EXPECT_FALSE(graph.ok());
  if (graph.ok()) return "";
  EXPECT_EQ(graph.status().message(), op_status.message()) << "end_capture returns the first error";
  return graph.status().message();
}

TEST(EmulatedGraph, SupportsGraphsButHostBackendsDoNot) {
  EXPECT_TRUE(emulated()->supports_graphs());
  EXPECT_FALSE(make_cpu_backend()->supports_graphs());
  EXPECT_FALSE(make_cpu_backend()->begin_capture().ok());
}

TEST(EmulatedGraph, CaptureDoesNotRunAndReplayReadsNewInputs) {
  auto be = emulated();
  const std::vector<float> a0 = random_floats(15, 1), b0 = random_floats(15, 2);
  const std::vector<float> sentinel(15, 42.0f);
  BackendTensor a = upload_f32(*be, a0, {3, 5}), b = upload_f32(*be, b0, {3, 5});
  BackendTensor out = upload_f32(*be, sentinel, {3, 5});
  auto graph = capture(*be, [&] { return be->add(a.view, b.view, out.view); });
  EXPECT_TRUE(bitwise_equal(download(*be, out), sentinel)) << "capture must not run the op";

  ASSERT_TRUE(be->replay(*graph).ok());
  std::vector<float> want(15);
  for (size_t i = 0; i < 15; ++i) want[i] = a0[i] + b0[i];
  EXPECT_TRUE(bitwise_equal(download(*be, out), want));

  const std::vector<float> a1 = random_floats(15, 3);
  write(*be, a, a1);
  ASSERT_TRUE(be->replay(*graph).ok());
  for (size_t i = 0; i < 15; ++i) want[i] = a1[i] + b0[i];
  EXPECT_TRUE(bitwise_equal(download(*be, out), want)) << "replay reads the inputs' new values";
}

TEST(EmulatedGraph, EmbeddingReadsIdsAtReplay) {
  auto be = emulated();
  const std::vector<float> table_host = random_floats(7 * 4, 4);
  BackendTensor table = upload_f32(*be, table_host, {7, 4});
  BackendTensor ids = upload_i32(*be, {0, 0, 0}, {3});
  BackendTensor out = upload_f32(*be, std::vector<float>(12, 0.0f), {3, 4});
  auto graph = capture(*be, [&] { return be->embedding(table.view, span_of(ids), out.view); });

  for (const std::vector<int32_t>& step : {std::vector<int32_t>{6, 1, 3}, {2, 2, 0}}) {
    write(*be, ids, step);
    ASSERT_TRUE(be->replay(*graph).ok());
    const std::vector<float> got = download(*be, out);
    for (size_t t = 0; t < step.size(); ++t) {
      for (size_t j = 0; j < 4; ++j) {
        EXPECT_EQ(got[t * 4 + j], table_host[static_cast<size_t>(step[t]) * 4 + j]);
      }
    }
  }
  // A bad id is caught by the inner op at replay, prefixed with the op's place in the graph.
  write(*be, ids, std::vector<int32_t>{0, 7, 0});
  const Status s = be->replay(*graph);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("op 0 of 1 (embedding)"), std::string::npos) << s.message();
}

TEST(EmulatedGraph, ReplayTwiceEqualsTwoEagerRuns) {
  auto eager = emulated(), graphed = emulated();
  const std::vector<float> x0 = random_floats(4 * 6, 5), y0 = random_floats(4 * 6, 6);
  BackendTensor ex = upload_f32(*eager, x0, {4, 6}), ey = upload_f32(*eager, y0, {4, 6});
  BackendTensor gx = upload_f32(*graphed, x0, {4, 6}), gy = upload_f32(*graphed, y0, {4, 6});
  // x = x + y, then x = silu(x) * y: each run depends on the previous one's result.
  auto step = [](Backend& be, const BackendTensor& x, const BackendTensor& y) {
    TESSERA_RETURN_IF_ERROR(be.add(x.view, y.view, x.view));
    return be.silu_mul(x.view, y.view, x.view);
  };
  auto graph = capture(*graphed, [&] { return step(*graphed, gx, gy); });
  for (int run = 0; run < 2; ++run) {
    ASSERT_TRUE(step(*eager, ex, ey).ok());
    ASSERT_TRUE(graphed->replay(*graph).ok());
    EXPECT_TRUE(bitwise_equal(download(*eager, ex), download(*graphed, gx))) << "run " << run;
  }
}

TEST(EmulatedGraph, SeveralOpsEqualEagerBitwise) {
  for (Maker inner : {make_cpu_backend, make_reference_backend}) {
    auto eager = emulated(inner), graphed = emulated(inner);
    const int64_t m = 3, k = 37, n = 19;
    const std::vector<float> x = random_floats(m * k, 7), norm_w = random_floats(k, 8);
    const std::vector<float> w = random_floats(n * k, 9), res = random_floats(m * n, 10);
    struct State {
      BackendTensor x, norm_w, normed, w, proj, res, out;
    };
    auto make_state = [&](Backend& be) {
      return State{upload_f32(be, x, {m, k}),   upload_f32(be, norm_w, {k}),
                   upload_f32(be, x, {m, k}),   upload_f32(be, w, {n, k}),
                   upload_f32(be, res, {m, n}), upload_f32(be, res, {m, n}),
                   upload_f32(be, res, {m, n})};
    };
    auto step = [](Backend& be, const State& st) {
      TESSERA_RETURN_IF_ERROR(be.rms_norm(st.x.view, st.norm_w.view, 1e-6f, st.normed.view));
      TESSERA_RETURN_IF_ERROR(be.matmul(st.normed.view, st.w.view, st.proj.view));
      return be.add(st.proj.view, st.res.view, st.out.view);
    };
    State es = make_state(*eager), gs = make_state(*graphed);
    auto graph = capture(*graphed, [&] { return step(*graphed, gs); });
    for (uint32_t seed : {11u, 12u}) {
      const std::vector<float> new_x = random_floats(m * k, seed);
      write(*eager, es.x, new_x);
      write(*graphed, gs.x, new_x);
      ASSERT_TRUE(step(*eager, es).ok());
      ASSERT_TRUE(graphed->replay(*graph).ok());
      EXPECT_TRUE(bitwise_equal(download(*eager, es.out), download(*graphed, gs.out)))
          << eager->name() << " seed " << seed;
    }
  }
}

TEST(EmulatedGraph, HostTensorOperandFailsTheCapture) {
  auto be = emulated();
  std::vector<float> host_b = random_floats(6, 13);
  BackendTensor a = upload_f32(*be, random_floats(6, 14), {2, 3});
  BackendTensor out = upload_f32(*be, std::vector<float>(6, 0.0f), {2, 3});
  const Tensor b(host_b.data(), DType::kF32, {2, 3});
  const std::string msg = failed_capture(*be, [&] { return be->add(a.view, b, out.view); });
  EXPECT_NE(msg.find("graph capture: add operand `b` is host memory"), std::string::npos) << msg;

  // The backend still works: eagerly (a host operand is fine outside a capture) and captured.
  ASSERT_TRUE(be->add(a.view, b, out.view).ok());
  auto graph = capture(*be, [&] { return be->add(a.view, a.view, out.view); });
  ASSERT_TRUE(be->replay(*graph).ok());
}

TEST(EmulatedGraph, HostSpanOperandFailsTheCapture) {
  auto be = emulated();
  BackendTensor table = upload_f32(*be, random_floats(20, 15), {5, 4});
  BackendTensor out = upload_f32(*be, std::vector<float>(8, 0.0f), {2, 4});
  const std::vector<int32_t> host_ids = {1, 2};
  const std::string msg =
      failed_capture(*be, [&] { return be->embedding(table.view, host_ids, out.view); });
  EXPECT_NE(msg.find("graph capture: embedding operand `ids` is host memory"), std::string::npos)
      << msg;
  // A strided view reaching past the arena's end is not arena memory either.
  BackendTensor small = upload_f32(*be, random_floats(4, 16), {2, 2});
  const Tensor overreach = small.view.with_strides({1 << 20, 4});
  const std::string msg2 =
      failed_capture(*be, [&] { return be->add(overreach, small.view, small.view); });
  EXPECT_NE(msg2.find("add operand `a`"), std::string::npos) << msg2;
}

TEST(EmulatedGraph, OnlyTheFirstErrorIsKept) {
  auto be = emulated();
  BackendTensor x = upload_f32(*be, random_floats(6, 17), {2, 3});
  BackendTensor w = upload_f32(*be, random_floats(12, 18), {4, 3});
  BackendTensor bad_out = upload_f32(*be, std::vector<float>(6, 0.0f), {2, 3});
  ASSERT_TRUE(be->begin_capture().ok());
  const Status first = be->matmul(x.view, w.view, bad_out.view);  // out must be [2, 4]
  EXPECT_FALSE(first.ok()) << "a bad shape fails at capture, as on CUDA";
  EXPECT_NE(first.message().find("matmul"), std::string::npos) << first.message();
  EXPECT_FALSE(be->synchronize().ok());
  Result<std::unique_ptr<StepGraph>> graph = be->end_capture();
  ASSERT_FALSE(graph.ok());
  EXPECT_EQ(graph.status().message(), first.message());
  EXPECT_FALSE(be->end_capture().ok()) << "the failed end_capture ended the capture";
}

TEST(EmulatedGraph, HostSideCallsFailDuringCapture) {
  auto be = emulated();
  BackendTensor t = upload_f32(*be, random_floats(8, 19), {2, 4});
  std::vector<float> host(8);
  const Tensor host_view(host.data(), DType::kF32, {2, 4});
  BackendTensor ids = upload_i32(*be, {0, 0}, {2});
  const std::vector<SampleParams> params(2);
  const std::vector<std::pair<std::string, std::function<Status()>>> calls = {
      {"download", [&] { return be->download(t.view, host_view); }},
      {"synchronize", [&] { return be->synchronize(); }},
      {"upload", [&] { return be->upload(host_view).status(); }},
      {"sample", [&] { return be->sample(t.view, params, ids.view); }},
      {"begin_capture", [&] { return be->begin_capture(); }},
      {"replay",
       [&] {
         auto g = std::make_unique<StepGraph>();
         return be->replay(*g);
       }},
      {"copy", [&] { return be->copy(host_view, t.view); }},
  };
  for (const auto& [name, call] : calls) {
    const std::string msg = failed_capture(*be, call);
    EXPECT_NE(msg.find(name), std::string::npos) << name << ": " << msg;
  }
  // Outside a capture every one of them works again.
  EXPECT_TRUE(be->download(t.view, host_view).ok());
  EXPECT_TRUE(be->synchronize().ok());
  EXPECT_TRUE(be->sample(t.view, params, ids.view).ok());
}

TEST(EmulatedGraph, CaptureStateErrors) {
  auto be = emulated(), other = emulated();
  EXPECT_FALSE(be->end_capture().ok()) << "end without begin";
  BackendTensor a = upload_f32(*be, random_floats(4, 20), {4});
  auto graph = capture(*be, [&] { return be->add(a.view, a.view, a.view); });
  const Status foreign = other->replay(*graph);
  EXPECT_FALSE(foreign.ok());
  EXPECT_NE(foreign.message().find("not captured by this backend"), std::string::npos);
  StepGraph not_emulated;
  EXPECT_FALSE(be->replay(not_emulated).ok());
  auto empty = capture(*be, [] { return Status::ok_status(); });
  EXPECT_TRUE(be->replay(*empty).ok());
}

TEST(EmulatedGraph, CopyFromHostOutsideCapture) {
  auto be = emulated();
  BackendTensor dst = upload_f32(*be, std::vector<float>(6, 0.0f), {2, 3});
  // A strided host source: rows of 5 floats, 3 used.
  std::vector<float> host = random_floats(10, 21);
  const Tensor src = Tensor(host.data(), DType::kF32, {2, 3}).with_strides({20, 4});
  ASSERT_TRUE(be->copy(src, dst.view).ok());
  const std::vector<float> got = download(*be, dst);
  EXPECT_EQ(got, (std::vector<float>{host[0], host[1], host[2], host[5], host[6], host[7]}));
}

// Two decode steps of two sequences through one recorded kv_append + paged_attention, with
// the step's metadata (query_start, seq_lens, slot_mapping, block tables) in backend tensors
// rewritten before each replay, against the same ops run eagerly on another backend.
TEST(EmulatedGraph, PagedDecodeStepsReplayWithNewMetadata) {
  constexpr int64_t kBlocks = 6, kBlockSize = 4, kHkv = 2, kHq = 4, kD = 8, kSeqs = 2;
  struct Step {
    std::vector<int32_t> query_start, seq_lens, slot_mapping, block_tables;
  };
  // Seq 0 owns blocks {2, 0}, seq 1 block {4}; each step appends one token to each.
  const std::vector<Step> steps = {{{0, 1, 2}, {5, 3}, {0 * 4 + 0, 4 * 4 + 2}, {2, 0, 4, 0}},
                                   {{0, 1, 2}, {6, 4}, {0 * 4 + 1, 4 * 4 + 3}, {2, 0, 4, 0}}};
  for (Maker inner : {make_cpu_backend, make_reference_backend}) {
    struct State {
      BackendTensor k_cache, v_cache, q, k, v, out, query_start, seq_lens, slot_mapping, tables;
    };
    const size_t cache_elems = kBlocks * kBlockSize * kHkv * kD;
    auto make_state = [&](Backend& be) {
      return State{upload_f32(be, random_floats(cache_elems, 22), {kBlocks, kBlockSize, kHkv, kD}),
                   upload_f32(be, random_floats(cache_elems, 23), {kBlocks, kBlockSize, kHkv, kD}),
                   upload_f32(be, random_floats(kSeqs * kHq * kD, 24), {kSeqs, kHq, kD}),
                   upload_f32(be, random_floats(kSeqs * kHkv * kD, 25), {kSeqs, kHkv, kD}),
                   upload_f32(be, random_floats(kSeqs * kHkv * kD, 26), {kSeqs, kHkv, kD}),
                   upload_f32(be, std::vector<float>(kSeqs * kHq * kD, 0.0f), {kSeqs, kHq, kD}),
                   upload_i32(be, {0, 0, 0}, {kSeqs + 1}),
                   upload_i32(be, {0, 0}, {kSeqs}),
                   upload_i32(be, {-1, -1}, {kSeqs}),
                   upload_i32(be, {0, 0, 0, 0}, {kSeqs, 2})};
    };
    auto run_step = [](Backend& be, const State& st) {
      TESSERA_RETURN_IF_ERROR(be.kv_append(st.k.view, st.v.view, span_of(st.slot_mapping),
                                           st.k_cache.view, st.v_cache.view));
      return be.paged_attention(st.q.view, st.k_cache.view, st.v_cache.view,
                                span_of(st.query_start), span_of(st.seq_lens), st.tables.view,
                                0.35f, st.out.view);
    };
    auto eager = emulated(inner), graphed = emulated(inner);
    State es = make_state(*eager), gs = make_state(*graphed);
    // Recorded once, while the metadata tensors hold placeholders nothing reads.
    auto graph = capture(*graphed, [&] { return run_step(*graphed, gs); });
    std::vector<std::vector<float>> step_outs;
    for (size_t i = 0; i < steps.size(); ++i) {
      const Step& step = steps[i];
      const std::vector<float> q = random_floats(kSeqs * kHq * kD, 30 + static_cast<uint32_t>(i));
      const std::vector<float> k = random_floats(kSeqs * kHkv * kD, 40 + static_cast<uint32_t>(i));
      const std::vector<float> v = random_floats(kSeqs * kHkv * kD, 50 + static_cast<uint32_t>(i));
      for (auto [be, st] : {std::pair{eager.get(), &es}, std::pair{graphed.get(), &gs}}) {
        write(*be, st->query_start, step.query_start);
        write(*be, st->seq_lens, step.seq_lens);
        write(*be, st->slot_mapping, step.slot_mapping);
        write(*be, st->tables, step.block_tables);
        write(*be, st->q, q);
        write(*be, st->k, k);
        write(*be, st->v, v);
      }
      ASSERT_TRUE(run_step(*eager, es).ok());
      ASSERT_TRUE(graphed->replay(*graph).ok());
      EXPECT_TRUE(bitwise_equal(download(*eager, es.out), download(*graphed, gs.out)))
          << eager->name() << " step " << i;
      step_outs.push_back(download(*graphed, gs.out));
      EXPECT_TRUE(bitwise_equal(download(*eager, es.k_cache), download(*graphed, gs.k_cache)));
      EXPECT_TRUE(bitwise_equal(download(*eager, es.v_cache), download(*graphed, gs.v_cache)));
    }
    EXPECT_FALSE(bitwise_equal(step_outs[0], step_outs[1])) << "each step read its own inputs";
  }
}

}  // namespace
}  // namespace tessera::backend
