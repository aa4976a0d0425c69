// Device residency: the models keep every weight, KV block and activation in the backend's
// memory and never read it on the host. Run on the emulated device (a CPU backend whose arena
// the host cannot read outside an op: a stray host read segfaults) they must give the CPU
// backend's logits and transformers' golden logits; the same tests named `...__cuda` run on the
// CUDA backend and skip without a GPU. Also unit tests of the emulated device itself.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "tessera/backend/backend.h"
#include "tessera/backend/cuda_backend.h"
#include "tessera/backend/emulated_device.h"
#include "tessera/engine/engine.h"
#include "tessera/kv/block_manager.h"
#include "tessera/model/model_loader.h"
#include "tessera/runtime/model_runner.h"
#include "tessera/sampling/sampler.h"
#include "tessera/sched/scheduler.h"
#include "tessera/text/tokenizer.h"
#include "tests/models/golden_fixture.h"

namespace tessera::model {
namespace {

using backend::Backend;
using backend::BackendTensor;

// ---------------------------------------------------------------- the emulated device itself

std::unique_ptr<Backend> emulated() {
  return backend::make_emulated_device_backend(backend::make_cpu_backend());
}

TEST(EmulatedDevice, NameAndKind) {
  auto be = emulated();
  EXPECT_EQ(be->name(), "emulated:cpu");
  EXPECT_TRUE(be->is_device());
  EXPECT_FALSE(backend::make_cpu_backend()->is_device());
}

TEST(EmulatedDevice, UploadDownloadRoundTripStrided) {
  auto be = emulated();
  // A strided host source: [5, 7] f32 in rows of 9.
  std::vector<float> host(5 * 9);
  std::iota(host.begin(), host.end(), 1.0f);
  Tensor src = Tensor(host.data(), DType::kF32, {5, 7}).with_strides({9 * 4, 4});
  Result<BackendTensor> dev = be->upload(src);
  ASSERT_TRUE(dev.ok()) << dev.status().message();
  EXPECT_NE(dev->view.data(), src.data());  // upload always copies on a device
  EXPECT_TRUE(dev->view.is_contiguous());
  std::vector<float> back(5 * 8, -1.0f);
  Tensor dst = Tensor(back.data(), DType::kF32, {5, 7}).with_strides({8 * 4, 4});
  ASSERT_TRUE(be->download(dev->view, dst).ok());
  for (int r = 0; r < 5; ++r) {
    for (int c = 0; c < 8; ++c) {
      EXPECT_EQ(back[r * 8 + c], c < 7 ? host[r * 9 + c] : -1.0f) << r << "," << c;
    }
  }
}

TEST(EmulatedDevice, BlockTypesCopyAndFreedMemoryIsReused) {
  auto be = emulated();
  void* first = nullptr;
  {
    Result<BackendTensor> a = be->allocate(DType::kQ4_0, {3, 64});
    ASSERT_TRUE(a.ok()) << a.status().message();
    first = a->view.data();
    Result<BackendTensor> b = be->allocate(DType::kQ4_0, {3, 64});
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(reinterpret_cast<uintptr_t>(b->view.data()) % 64, 0u);
    std::vector<uint8_t> bytes(a->view.nbytes());
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i * 7 + 3);
    Tensor host(bytes.data(), DType::kQ4_0, {3, 64});
    Result<BackendTensor> up = be->upload(host);
    ASSERT_TRUE(up.ok());
    ASSERT_TRUE(be->copy(up->view, a->view).ok());
    ASSERT_TRUE(be->copy(a->view.row(2), b->view.row(0)).ok());
    std::vector<uint8_t> back(bytes.size());
    ASSERT_TRUE(be->download(b->view.row(0), Tensor(back.data(), DType::kQ4_0, {64})).ok());
    const int64_t row_bytes = static_cast<int64_t>(bytes.size()) / 3;
    EXPECT_TRUE(std::equal(back.begin(), back.begin() + row_bytes, bytes.begin() + 2 * row_bytes));
  }
  Result<BackendTensor> again = be->allocate(DType::kQ4_0, {3, 64});
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->view.data(), first);  // the freed block is handed out again
}

TEST(EmulatedDevice, OpsRunOnDeviceMemory) {
  auto be = emulated();
  auto cpu = backend::make_cpu_backend();
  std::vector<float> a(6 * 33), w(5 * 33);
  for (size_t i = 0; i < a.size(); ++i) a[i] = std::sin(0.1f * i);
  for (size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.3f * i);
  Tensor ha(a.data(), DType::kF32, {6, 33}), hw(w.data(), DType::kF32, {5, 33});
  Result<BackendTensor> da = be->upload(ha), dw = be->upload(hw);
  Result<BackendTensor> dout = be->allocate(DType::kF32, {6, 5});
  ASSERT_TRUE(da.ok() && dw.ok() && dout.ok());
  ASSERT_TRUE(be->matmul(da->view, dw->view, dout->view).ok());
  std::vector<float> got(30), want(30);
  ASSERT_TRUE(be->download(dout->view, Tensor(got.data(), DType::kF32, {6, 5})).ok());
  ASSERT_TRUE(cpu->matmul(ha, hw, Tensor(want.data(), DType::kF32, {6, 5})).ok());
  EXPECT_EQ(got, want);

  // moe_combine through the device: x [2, 3, 4], weights [2, 3].
  std::vector<float> x(24), g = {0.5f, 0.25f, 2.0f, -1.0f, 1.0f, 0.125f}, out(8), ref(8);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i) - 7.0f;
  Tensor hx(x.data(), DType::kF32, {2, 3, 4}), hg(g.data(), DType::kF32, {2, 3});
  Result<BackendTensor> dx = be->upload(hx), dg = be->upload(hg);
  Result<BackendTensor> dc = be->allocate(DType::kF32, {2, 4});
  ASSERT_TRUE(dx.ok() && dg.ok() && dc.ok());
  ASSERT_TRUE(be->moe_combine(dx->view, dg->view, dc->view).ok());
  ASSERT_TRUE(be->download(dc->view, Tensor(out.data(), DType::kF32, {2, 4})).ok());
  for (int t = 0; t < 2; ++t) {
    for (int c = 0; c < 4; ++c) {
      float acc = 0.0f;
      for (int j = 0; j < 3; ++j) acc += g[t * 3 + j] * x[(t * 3 + j) * 4 + c];
      ref[t * 4 + c] = acc;
    }
  }
  EXPECT_EQ(out, ref);
  // A host tensor passed to an op stays host (as the CUDA backend stages it).
  std::vector<float> host_out(30);
  ASSERT_TRUE(be->matmul(da->view, dw->view, Tensor(host_out.data(), DType::kF32, {6, 5})).ok());
  EXPECT_EQ(host_out, want);
}

TEST(EmulatedDeviceDeathTest, HostReadOfDeviceMemoryDies) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  auto be = emulated();
  Result<BackendTensor> t = be->allocate(DType::kF32, {4, 16});
  ASSERT_TRUE(t.ok());
  volatile const float* p = t->view.data_as<float>();
  ASSERT_EXIT(
      {
        [[maybe_unused]] float v = p[3];
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGSEGV), "");
  // Still usable by ops afterwards (in this process nothing was touched), and closed again
  // after each op.
  std::vector<float> zeros(64, 0.0f);
  EXPECT_TRUE(be->copy(Tensor(zeros.data(), DType::kF32, {4, 16}), t->view).ok());
  ASSERT_EXIT(
      {
        [[maybe_unused]] float v = p[5];
        std::exit(0);
      },
      ::testing::KilledBySignal(SIGSEGV), "");
}

// ---------------------------------------------------------------- the models on a device

using testing::Golden;
using testing::read_golden;
using testing::relative_error;

int32_t argmax_row(const float* row, int64_t n) {
  return sampling::argmax(std::span<const float>(row, static_cast<size_t>(n)));
}

// Fixture directory (under tests/fixtures), its golden tolerance (the FP8 copy is compared to
// its dequantised reference) and the device ("emulated" or "cuda").
struct Variant {
  const char* fixture;
  double golden_tol;
};
const Variant kVariants[] = {{"llama_tiny/base", 1e-4},  {"llama_tiny/tied", 1e-4},
                             {"deepseek_v3_tiny", 1e-4}, {"deepseek_v2_tiny", 1e-4},
                             {"mixtral_tiny", 1e-4},     {"deepseek_v3_fp8_tiny", 1e-3}};

using Param = std::tuple<int, std::string>;  // (variant index, device)

class DeviceResidencyTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    variant_ = kVariants[std::get<0>(GetParam())];
    dir_ = std::string(TESSERA_FIXTURES_DIR) + "/" + variant_.fixture;
    golden_ = read_golden(dir_);
    if (std::get<1>(GetParam()) == "cuda") {
      Result<std::unique_ptr<backend::CudaBackend>> cuda = backend::make_cuda_backend();
      if (!cuda.ok()) GTEST_SKIP() << "no CUDA device: " << cuda.status().message();
      device_ = std::move(cuda).value();
      cross_tol_ = 1e-4;  // another GEMM / attention summation order
    } else {
      device_ = emulated();
      cross_tol_ = 1e-6;  // the same CPU kernels behind the arena
    }
    cpu_ = backend::make_cpu_backend();
  }
  LoadedModel load(Backend* be) {
    LlamaOptions options;
    options.max_context = 128;
    Result<LoadedModel> m = load_model(dir_, be, options);
    EXPECT_TRUE(m.ok()) << m.status().message();
    return m.ok() ? std::move(m).value() : LoadedModel();
  }
  const float* golden_row(int64_t i) const { return &golden_.logits[i * golden_.vocab]; }

  Variant variant_;
  std::string dir_;
  Golden golden_;
  double cross_tol_ = 0.0;
  std::unique_ptr<Backend> device_, cpu_;
};

TEST_P(DeviceResidencyTest, TeacherForcedLogitsMatchCpuAndTransformers) {
  LoadedModel dev = load(device_.get());
  LoadedModel cpu = load(cpu_.get());
  ASSERT_TRUE(dev.model && cpu.model);
  const int64_t n = golden_.tokens.size(), v = golden_.vocab;
  OwnedTensor ld(DType::kF32, {n, v}), lc(DType::kF32, {n, v});
  Status st = dev.model->forward(golden_.tokens, 0, true, ld.view());
  ASSERT_TRUE(st.ok()) << st.message();
  ASSERT_TRUE(cpu.model->forward(golden_.tokens, 0, true, lc.view()).ok());
  EXPECT_LE(relative_error(ld.data_as<float>(), lc.data_as<float>(), n * v), cross_tol_);
  EXPECT_LE(relative_error(ld.data_as<float>(), golden_.logits.data(), n * v), variant_.golden_tol);
}

TEST_P(DeviceResidencyTest, ChunkedPrefillAndGreedyDecodeMatchTransformers) {
  LoadedModel dev = load(device_.get());
  ASSERT_TRUE(dev.model);
  Model& m = *dev.model;
  const int64_t v = golden_.vocab;
  // Last-row logits of a prefix (the head's single-row path), then a few decode steps.
  OwnedTensor row(DType::kF32, {1, v});
  Status st = m.forward(std::span<const int32_t>(golden_.tokens).first(20), 0, false, row.view());
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_LE(relative_error(row.data_as<float>(), golden_row(19), v), variant_.golden_tol);
  for (int64_t i = 20; i < 24; ++i) {
    ASSERT_TRUE(m.forward(std::span<const int32_t>(&golden_.tokens[i], 1), static_cast<int32_t>(i),
                          false, row.view())
                    .ok());
    EXPECT_LE(relative_error(row.data_as<float>(), golden_row(i), v), variant_.golden_tol) << i;
  }
  ASSERT_TRUE(m.forward(golden_.prompt, 0, false, row.view()).ok());
  std::vector<int32_t> out;
  while (out.size() < golden_.greedy.size()) {
    int32_t next = argmax_row(row.data_as<float>(), v);
    out.push_back(next);
    ASSERT_TRUE(
        m.forward(std::span<const int32_t>(&next, 1), m.num_cached_tokens(), false, row.view())
            .ok());
  }
  EXPECT_EQ(out, golden_.greedy);
}

// A prefill into a paged cache on the device, a block copy (copy-on-write of the partial last
// block), then a decode whose block table names the copy: its logits are transformers' row.
TEST_P(DeviceResidencyTest, PagedForwardBatchWithBlockCopy) {
  LoadedModel dev = load(device_.get());
  ASSERT_TRUE(dev.model);
  Model& m = *dev.model;
  const int64_t v = golden_.vocab;
  const int32_t bs = 4;
  Result<PagedKvCache> cache = PagedKvCache::create(device_.get(), m.config(), 16, bs);
  ASSERT_TRUE(cache.ok()) << cache.status().message();
  auto run = [&](const std::vector<int32_t>& table, int32_t begin, int32_t end, Tensor logits) {
    ForwardBatch b;
    b.query_start = {0, end - begin};
    b.seq_lens = {end};
    b.block_tables = table;
    b.max_blocks_per_seq = static_cast<int32_t>(table.size());
    for (int32_t p = begin; p < end; ++p) {
      b.tokens.push_back(golden_.tokens[p]);
      b.positions.push_back(p);
      b.slot_mapping.push_back(table[p / bs] * bs + p % bs);
    }
    b.logits_indices = {end - begin - 1};
    return m.forward_batch(b, *cache, logits);
  };
  OwnedTensor row(DType::kF32, {1, v});
  Status st = run({3, 7, 5}, 0, 10, row.view());  // blocks 3, 7 full; block 5 holds 2 tokens
  ASSERT_TRUE(st.ok()) << st.message();
  EXPECT_LE(relative_error(row.data_as<float>(), golden_row(9), v), variant_.golden_tol);
  ASSERT_TRUE(cache->copy_block(5, 11).ok());
  ASSERT_TRUE(run({3, 7, 11}, 10, 11, row.view()).ok());
  EXPECT_LE(relative_error(row.data_as<float>(), golden_row(10), v), variant_.golden_tol);
}

// Scheduler-driven greedy generation of three requests through ModelRunner: the same tokens on
// the device as on the CPU.
std::map<sched::SeqId, std::vector<int32_t>> drive(Model& m, Backend* be, int64_t vocab,
                                                   const std::vector<int32_t>& tokens) {
  kv::BlockManager blocks({.num_blocks = 48, .block_size = 4, .enable_prefix_caching = true});
  sched::Scheduler scheduler({.max_num_batched_tokens = 32, .max_num_seqs = 4}, &blocks);
  Result<PagedKvCache> cache =
      PagedKvCache::create(be, m.config(), blocks.num_blocks(), blocks.block_size());
  EXPECT_TRUE(cache.ok()) << cache.status().message();
  std::map<sched::SeqId, std::vector<int32_t>> out;
  if (!cache.ok()) return out;
  runtime::ModelRunner runner(&m, &*cache, {.max_num_batched_tokens = 32, .max_num_seqs = 4});
  for (int i = 0; i < 3; ++i) {
    sched::SeqRequest r;
    r.id = 10 + i;
    r.prompt.assign(tokens.begin(), tokens.begin() + 9 + 5 * i);  // shared prefix
    r.max_new_tokens = 5;
    EXPECT_TRUE(scheduler.add_request(r).ok());
  }
  for (int step = 0; step < 200 && scheduler.has_unfinished(); ++step) {
    sched::SchedulerOutput s = scheduler.schedule();
    Result<runtime::StepLogits> logits = runner.execute(s, scheduler);
    EXPECT_TRUE(logits.ok()) << logits.status().message();
    if (!logits.ok()) break;
    for (size_t i = 0; i < logits->seq_ids.size(); ++i) {
      const int32_t t = argmax_row(logits->logits.row(i).data_as<float>(), vocab);
      out[logits->seq_ids[i]].push_back(t);
      scheduler.append_token(logits->seq_ids[i], t);
    }
  }
  EXPECT_FALSE(scheduler.has_unfinished());
  return out;
}

TEST_P(DeviceResidencyTest, ModelRunnerMatchesCpu) {
  LoadedModel dev = load(device_.get());
  LoadedModel cpu = load(cpu_.get());
  ASSERT_TRUE(dev.model && cpu.model);
  if (std::get<1>(GetParam()) == "cuda") {
    OwnedTensor probe(DType::kF32, {1, golden_.vocab});
    Status st = dev.model->forward(std::span<const int32_t>(golden_.tokens).first(2), 0, false,
                                   probe.view());
  }
  auto on_dev = drive(*dev.model, device_.get(), golden_.vocab, golden_.tokens);
  auto on_cpu = drive(*cpu.model, cpu_.get(), golden_.vocab, golden_.tokens);
  EXPECT_EQ(on_dev.size(), 3u);
  EXPECT_EQ(on_dev, on_cpu);
}

std::string variant_name(const ::testing::TestParamInfo<Param>& info) {
  std::string name = kVariants[std::get<0>(info.param)].fixture;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name + "__" + std::get<1>(info.param);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, DeviceResidencyTest,
    ::testing::Combine(::testing::Range(0, static_cast<int>(std::size(kVariants))),
                       ::testing::Values("emulated", "cuda")),
    variant_name);

// SmolLM2 (GGUF Q4_1, a real tokenizer's vocab) for a few tokens on the emulated device: the
// same logits as on the CPU.
TEST(DeviceResidencySmolLM2, FewTokensMatchCpu) {
  const std::string path = std::string(TESSERA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << path << " is absent";
  auto dev_be = emulated();
  auto cpu_be = backend::make_cpu_backend();
  LlamaOptions options;
  options.max_context = 64;
  Result<LoadedModel> dev = load_model(path, dev_be.get(), options);
  Result<LoadedModel> cpu = load_model(path, cpu_be.get(), options);
  ASSERT_TRUE(dev.ok() && cpu.ok());
  const std::vector<int32_t> tokens = {1, 9690, 198, 2683, 359, 253, 5356, 5646};
  const int64_t n = tokens.size(), v = dev->config.vocab_size;
  OwnedTensor ld(DType::kF32, {n, v}), lc(DType::kF32, {n, v});
  ASSERT_TRUE(dev->model->forward(tokens, 0, true, ld.view()).ok());
  ASSERT_TRUE(cpu->model->forward(tokens, 0, true, lc.view()).ok());
  EXPECT_LE(relative_error(ld.data_as<float>(), lc.data_as<float>(), n * v), 1e-6);
}

// The engine on the emulated device: greedy and seeded n = 2 sampling (its forks copy KV
// blocks on write) give the CPU engine's tokens.
std::vector<std::vector<int32_t>> engine_tokens(std::unique_ptr<Backend> be) {
  const std::string dir = std::string(TESSERA_FIXTURES_DIR) + "/llama_tiny/base";
  LlamaOptions options;
  options.max_context = 128;
  Result<LoadedModel> m = load_model(dir, be.get(), options);
  EXPECT_TRUE(m.ok()) << m.status().message();
  Result<text::Tokenizer> tok = text::tokenizer_from_json_file(dir);
  EXPECT_TRUE(tok.ok()) << tok.status().message();
  if (!m.ok() || !tok.ok()) return {};
  engine::EngineConfig config;
  config.seed = 7;
  config.block_size = 4;
  Result<std::unique_ptr<engine::Engine>> e = engine::Engine::create(m->model.get(), &*tok, config);
  EXPECT_TRUE(e.ok()) << e.status().message();
  if (!e.ok()) return {};
  std::vector<std::vector<int32_t>> out;
  for (int i = 0; i < 2; ++i) {
    engine::GenerateRequest r;
    r.prompt_tokens = {5, 17, 33, 2, 9, 41, 7 + i, 12, 3, 28};
    r.max_tokens = 8;
    r.n = i == 0 ? 1 : 2;
    r.sampling.temperature = i == 0 ? 0.0f : 0.8f;
    r.sampling.seed = 99;
    std::mutex mu;
    std::condition_variable cv;
    std::vector<std::vector<int32_t>> got(r.n);
    bool done = false;
    Status error;
    Result<engine::RequestId> id = (*e)->submit(r, [&](engine::RequestOutput o) {
      std::lock_guard<std::mutex> lock(mu);
      for (const engine::CompletionDelta& d : o.deltas) {
        got[d.index].insert(got[d.index].end(), d.token_ids.begin(), d.token_ids.end());
      }
      if (!o.error.ok()) error = o.error;
      if (o.finished) {
        done = true;
        cv.notify_all();
      }
    });
    EXPECT_TRUE(id.ok()) << id.status().message();
    std::unique_lock<std::mutex> lock(mu);
    EXPECT_TRUE(cv.wait_for(lock, std::chrono::seconds(60), [&] { return done; }));
    EXPECT_TRUE(error.ok()) << error.message();
    out.insert(out.end(), got.begin(), got.end());
  }
  (*e).reset();
  return out;
}

TEST(DeviceResidencyEngine, EmulatedDeviceGivesCpuTokens) {
  auto on_dev = engine_tokens(emulated());
  auto on_cpu = engine_tokens(backend::make_cpu_backend());
  ASSERT_EQ(on_dev.size(), 3u);
  EXPECT_EQ(on_dev, on_cpu);
  for (const auto& t : on_dev) EXPECT_EQ(t.size(), 8u);
}

}  // namespace
}  // namespace tessera::model
