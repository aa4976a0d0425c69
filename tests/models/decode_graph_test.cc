// Decode-step graphs (docs/cuda.md "CUDA graphs") end to end: a ModelRunner with graphs on a
// device backend runs the same scheduler steps as a runner without them, in lockstep, and every
// logits row must agree. The emulated device records and replays ops as CUDA stream capture
// does (nothing runs while capturing; replays read whatever the fixed addresses hold), so a
// model or runner that bakes a step's values into a graph fails here without a GPU. The same
// tests named `...__cuda` compare CUDA graphs against CUDA op by op and skip without a GPU.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
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
using testing::relative_error;

constexpr int32_t kBlockSize = 4;
constexpr int32_t kMaxTokens = 48;
constexpr int32_t kMaxSeqs = 6;

Result<std::unique_ptr<Backend>> make_device(const std::string& kind) {
  if (kind == "cuda") {
    Result<std::unique_ptr<backend::CudaBackend>> cuda = backend::make_cuda_backend();
    if (!cuda.ok()) return cuda.status();
    return std::unique_ptr<Backend>(std::move(cuda).value());
  }
  return backend::make_emulated_device_backend(backend::make_cpu_backend());
}

// One model with its own block manager, scheduler, paged cache and runner.
struct Side {
  std::unique_ptr<Backend> be;
  LoadedModel loaded;
  std::unique_ptr<kv::BlockManager> blocks;
  std::unique_ptr<sched::Scheduler> scheduler;
  std::unique_ptr<PagedKvCache> cache;
  std::unique_ptr<runtime::ModelRunner> runner;

  Status open(const std::string& dir, std::unique_ptr<Backend> backend, bool graphs) {
    be = std::move(backend);
    LlamaOptions options;
    options.max_context = 96;
    TESSERA_ASSIGN_OR_RETURN(loaded, load_model(dir, be.get(), options));
    blocks = std::make_unique<kv::BlockManager>(kv::BlockManagerConfig{
        .num_blocks = 96, .block_size = kBlockSize, .enable_prefix_caching = true});
    scheduler = std::make_unique<sched::Scheduler>(
        sched::SchedulerConfig{.max_num_batched_tokens = kMaxTokens, .max_num_seqs = kMaxSeqs},
        blocks.get());
    TESSERA_ASSIGN_OR_RETURN(
        PagedKvCache c, PagedKvCache::create(be.get(), loaded.model->config(), 96, kBlockSize));
    cache = std::make_unique<PagedKvCache>(std::move(c));
    // min_graph_context 8: the tiny contexts here cross the 8, 16, 32, 64 and 96 buckets.
    runner = std::make_unique<runtime::ModelRunner>(
        loaded.model.get(), cache.get(),
        runtime::ModelRunnerConfig{.max_num_batched_tokens = kMaxTokens,
                                   .max_num_seqs = kMaxSeqs,
                                   .enable_graphs = graphs,
                                   .min_graph_context = 8});
    return Status::ok_status();
  }
};

// Prompt of `len` ids in [1, vocab) drawn from a fixed pattern; `salt` varies it.
std::vector<int32_t> prompt(int32_t len, int32_t salt, int64_t vocab) {
  std::vector<int32_t> p;
  for (int32_t i = 0; i < len; ++i) {
    p.push_back(static_cast<int32_t>(1 + (i * 37 + salt * 11 + 5) % (vocab - 1)));
  }
  return p;
}

using Param = std::tuple<std::string, std::string>;  // (fixture, device)

class DecodeGraphTest : public ::testing::TestWithParam<Param> {
 protected:
  void SetUp() override {
    dir_ = std::string(TESSERA_FIXTURES_DIR) + "/" + std::get<0>(GetParam());
    device_kind_ = std::get<1>(GetParam());
    Result<std::unique_ptr<Backend>> dev = make_device(device_kind_);
    if (!dev.ok()) GTEST_SKIP() << "no CUDA device: " << dev.status().message();
    Status st = graphs_.open(dir_, std::move(dev).value(), /*graphs=*/true);
    ASSERT_TRUE(st.ok()) << st.message();
    // The other side runs op by op: the CPU next to the emulated device (the same kernels),
    // CUDA without graphs next to CUDA with them.
    std::unique_ptr<Backend> ref_be = backend::make_cpu_backend();
    if (device_kind_ == "cuda") ref_be = std::move(make_device("cuda")).value();
    st = eager_.open(dir_, std::move(ref_be), /*graphs=*/false);
    ASSERT_TRUE(st.ok()) << st.message();
    vocab_ = graphs_.loaded.model->vocab_size();
  }

  void add(sched::SeqId id, int32_t prompt_len, int32_t max_new, int32_t salt) {
    sched::SeqRequest r;
    r.id = id;
    r.prompt = prompt(prompt_len, salt, vocab_);
    r.max_new_tokens = max_new;
    ASSERT_TRUE(graphs_.scheduler->add_request(r).ok());
    ASSERT_TRUE(eager_.scheduler->add_request(r).ok());
  }

  // Runs both sides step by step until done; tokens are the op-by-op side's argmax, appended to
  // both. Every other step the graph side keeps its logits in backend memory (as the engine's
  // device sampling does) and the rows are downloaded here.
  void run_lockstep(
      const std::map<int, std::vector<std::tuple<sched::SeqId, int32_t, int32_t>>>& arrivals) {
    const double tol = device_kind_ == "cuda" ? 1e-4 : 1e-5;
    std::vector<float> row(static_cast<size_t>(vocab_));
    for (int step = 0; step < 400; ++step) {
      if (auto it = arrivals.find(step); it != arrivals.end()) {
        for (const auto& [id, len, max_new] : it->second) add(id, len, max_new, id);
      }
      if (!graphs_.scheduler->has_unfinished() && !eager_.scheduler->has_unfinished()) break;
      const sched::SchedulerOutput sg = graphs_.scheduler->schedule();
      const sched::SchedulerOutput se = eager_.scheduler->schedule();
      ASSERT_EQ(sg.seqs.size(), se.seqs.size()) << "step " << step;
      const bool in_backend = step % 2 == 1;
      Result<runtime::StepLogits> lg = graphs_.runner->execute(sg, *graphs_.scheduler, in_backend);
      ASSERT_TRUE(lg.ok()) << "step " << step << ": " << lg.status().message();
      Result<runtime::StepLogits> le = eager_.runner->execute(se, *eager_.scheduler);
      ASSERT_TRUE(le.ok()) << le.status().message();
      ASSERT_EQ(lg->seq_ids, le->seq_ids);
      ASSERT_EQ(lg->in_backend, in_backend);
      for (size_t i = 0; i < lg->seq_ids.size(); ++i) {
        const Tensor got = lg->logits.row(static_cast<int64_t>(i));
        if (lg->in_backend) {
          ASSERT_TRUE(graphs_.be->download(got, Tensor(row.data(), DType::kF32, {vocab_})).ok());
        } else {
          std::copy_n(got.data_as<const float>(), vocab_, row.begin());
        }
        const float* want = le->logits.row(static_cast<int64_t>(i)).data_as<const float>();
        ASSERT_LE(relative_error(row.data(), want, vocab_), tol)
            << "step " << step << ", sequence " << lg->seq_ids[i];
        const int32_t t = sampling::argmax(std::span<const float>(want, vocab_));
        graphs_.scheduler->append_token(lg->seq_ids[i], t);
        eager_.scheduler->append_token(le->seq_ids[i], t);
      }
      ++steps_;
    }
    EXPECT_FALSE(graphs_.scheduler->has_unfinished());
  }

  std::string dir_, device_kind_;
  Side graphs_, eager_;
  int64_t vocab_ = 0;
  int steps_ = 0;
};

// Five sequences of different lengths finish at different times (batch 5 -> 1: buckets 8, 4,
// 2, 1), two more arrive later (prefill steps run op by op in between), and the contexts grow
// through several context buckets.
TEST_P(DecodeGraphTest, GraphStepsMatchOpByOp) {
  run_lockstep({{0, {{1, 3, 6}, {2, 7, 14}, {3, 12, 9}, {4, 5, 30}, {5, 9, 11}}},
                {8, {{6, 6, 8}, {7, 4, 40}}}});
  const runtime::ModelRunnerStats& g = graphs_.runner->stats();
  EXPECT_EQ(g.capture_failures, 0);
  EXPECT_GE(g.graph_captures, 5);  // several batch and context buckets
  EXPECT_GT(g.graph_replays, g.graph_captures);
  EXPECT_EQ(g.eager_steps + g.graph_replays, steps_);
  EXPECT_EQ(g.device_metadata_steps, steps_);  // every step's metadata read in place
  const runtime::ModelRunnerStats& e = eager_.runner->stats();
  EXPECT_EQ(e.graph_replays, 0);
  EXPECT_EQ(e.eager_steps, steps_);
}

std::string param_name(const ::testing::TestParamInfo<Param>& info) {
  std::string name = std::get<0>(info.param);
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name + "__" + std::get<1>(info.param);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, DecodeGraphTest,
                         ::testing::Combine(::testing::Values("llama_tiny/base", "deepseek_v3_tiny",
                                                              "deepseek_v2_tiny", "mixtral_tiny",
                                                              "deepseek_v3_fp8_tiny"),
                                            ::testing::Values("emulated", "cuda")),
                         param_name);

// A runner without graphs on a device backend still reads every step's metadata in place.
TEST(DecodeGraphs, EnforceEagerOnDevice) {
  Side s;
  Status st = s.open(std::string(TESSERA_FIXTURES_DIR) + "/llama_tiny/base",
                     backend::make_emulated_device_backend(backend::make_cpu_backend()),
                     /*graphs=*/false);
  ASSERT_TRUE(st.ok()) << st.message();
  sched::SeqRequest r;
  r.id = 1;
  r.prompt = prompt(5, 1, s.loaded.model->vocab_size());
  r.max_new_tokens = 4;
  ASSERT_TRUE(s.scheduler->add_request(r).ok());
  int steps = 0;
  while (s.scheduler->has_unfinished()) {
    const sched::SchedulerOutput out = s.scheduler->schedule();
    Result<runtime::StepLogits> l = s.runner->execute(out, *s.scheduler);
    ASSERT_TRUE(l.ok()) << l.status().message();
    for (sched::SeqId id : l->seq_ids) s.scheduler->append_token(id, 3);
    ++steps;
  }
  EXPECT_FALSE(s.runner->graphs_enabled());
  EXPECT_EQ(s.runner->stats().graph_replays, 0);
  EXPECT_EQ(s.runner->stats().eager_steps, steps);
  EXPECT_EQ(s.runner->stats().device_metadata_steps, steps);
}

// The engine on a device with graphs (greedy, and seeded n = 2 sampled on the device) gives the
// tokens of the engine with enforce_eager; its stats count the replays.
struct EngineRun {
  std::vector<std::vector<int32_t>> tokens;
  engine::EngineStats stats;
};

EngineRun engine_run(Backend* be, bool enforce_eager) {
  const std::string dir = std::string(TESSERA_FIXTURES_DIR) + "/llama_tiny/base";
  LlamaOptions options;
  options.max_context = 128;
  Result<LoadedModel> m = load_model(dir, be, options);
  Result<text::Tokenizer> tok = text::tokenizer_from_json_file(dir);
  EXPECT_TRUE(m.ok() && tok.ok());
  if (!m.ok() || !tok.ok()) return {};
  engine::EngineConfig config;
  config.seed = 7;
  config.block_size = 4;
  config.enforce_eager = enforce_eager;
  Result<std::unique_ptr<engine::Engine>> e = engine::Engine::create(m->model.get(), &*tok, config);
  EXPECT_TRUE(e.ok()) << e.status().message();
  if (!e.ok()) return {};
  EngineRun run;
  std::mutex mu;
  std::condition_variable cv;
  int pending = 0;
  std::map<std::pair<int, int32_t>, std::vector<int32_t>> got;
  for (int i = 0; i < 3; ++i) {
    engine::GenerateRequest r;
    r.prompt_tokens = prompt(6 + 3 * i, i, m->model->vocab_size());
    r.max_tokens = 10 + 4 * i;
    r.n = i == 1 ? 2 : 1;
    r.sampling.temperature = i == 0 ? 0.0f : 0.9f;
    r.sampling.seed = 1234 + i;
    {
      std::lock_guard<std::mutex> lock(mu);
      ++pending;
    }
    Result<engine::RequestId> id = (*e)->submit(r, [&, i](engine::RequestOutput o) {
      std::lock_guard<std::mutex> lock(mu);
      for (const engine::CompletionDelta& c : o.deltas) {
        auto& v = got[{i, c.index}];
        v.insert(v.end(), c.token_ids.begin(), c.token_ids.end());
      }
      if (o.finished) {
        --pending;
        cv.notify_all();
      }
    });
    EXPECT_TRUE(id.ok()) << id.status().message();
  }
  std::unique_lock<std::mutex> lock(mu);
  cv.wait(lock, [&] { return pending == 0; });
  for (auto& [key, v] : got) run.tokens.push_back(v);
  run.stats = (*e)->stats();
  return run;
}

TEST(DecodeGraphs, EngineWithGraphsMatchesEnforceEager) {
  auto with_graphs = backend::make_emulated_device_backend(backend::make_cpu_backend());
  auto eager = backend::make_emulated_device_backend(backend::make_cpu_backend());
  const EngineRun g = engine_run(with_graphs.get(), /*enforce_eager=*/false);
  const EngineRun e = engine_run(eager.get(), /*enforce_eager=*/true);
  ASSERT_EQ(g.tokens.size(), 4u);
  EXPECT_EQ(g.tokens, e.tokens);
  EXPECT_GT(g.stats.graph_steps, 0);
  EXPECT_GT(g.stats.graph_captures, 0);
  EXPECT_GT(g.stats.device_sampled_tokens, 0);
  EXPECT_EQ(e.stats.graph_steps, 0);
  EXPECT_EQ(e.stats.graph_captures, 0);
}

}  // namespace
}  // namespace tessera::model
