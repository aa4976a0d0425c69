// model_decode_bench: one decode step of a Llama-3-8B-shaped model with random weights (no
// checkpoint needed) on any backend, beside its bandwidth floor. Goes the serving path: a
// scheduler and ModelRunner prefill --batch sequences of --context tokens, then time --decode
// greedy steps (schedule, forward, sample), once op by op and once with decode-step graphs
// where the backend has them (docs/cuda.md "CUDA graphs"). The floor is the bytes a step must
// read (every weight but the embedding table, plus the KV cache so far) over the backend's
// measured copy bandwidth; the fraction achieved is what the ">= 80% at batch 1"
// target reads.
//   model_decode_bench --backend cuda                  (H200: all 32 layers, bf16)
//   model_decode_bench --backend cpu --layers 2        (a CPU rehearsal at 8B layer shapes)
#include <fmt/format.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "bench/cpu_bench_util.h"
#include "bench/synthetic_weights.h"
#include "tessera/engine/pretrained.h"
#include "tessera/kv/block_manager.h"
#include "tessera/model/llama.h"
#include "tessera/model/paged_kv_cache.h"
#include "tessera/runtime/model_runner.h"
#include "tessera/sampling/sampler.h"
#include "tessera/sched/scheduler.h"

namespace {

using Clock = std::chrono::steady_clock;
using tessera::bench::seconds_since;

// Read + write bytes per second of backend->copy over a 2 x 512 MiB pair, best of 5.
tessera::Result<double> copy_bandwidth(tessera::backend::Backend& be) {
  using namespace tessera;
  const int64_t bytes = 512ll << 20;
  TESSERA_ASSIGN_OR_RETURN(backend::BackendTensor a, be.allocate(DType::kU8, {bytes}));
  TESSERA_ASSIGN_OR_RETURN(backend::BackendTensor b, be.allocate(DType::kU8, {bytes}));
  TESSERA_RETURN_IF_ERROR(be.copy(a.view, b.view));  // warm-up (first touch)
  TESSERA_RETURN_IF_ERROR(be.synchronize());
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = Clock::now();
    TESSERA_RETURN_IF_ERROR(be.copy(a.view, b.view));
    TESSERA_RETURN_IF_ERROR(be.synchronize());
    best = std::min(best, seconds_since(t0));
  }
  return 2.0 * static_cast<double>(bytes) / best;
}

struct DecodeRun {
  double prefill_s = 0.0;
  std::vector<double> steps_s;  // sorted
  tessera::runtime::ModelRunnerStats stats;
  double median_s() const { return steps_s[steps_s.size() / 2]; }
};

// Prefills `batch` distinct prompts of `context` tokens, runs 2 untimed decode steps (a graph
// bucket's first step is its warm-up and capture), then times `decode` steps. Greedy tokens
// are drawn by Backend::sample on a device (only the ids come back), by argmax on the host.
tessera::Result<DecodeRun> run_decode(tessera::model::LlamaModel& m, tessera::backend::Backend& be,
                                      int batch, int context, int decode, bool graphs) {
  using namespace tessera;
  const int32_t bs = 16, chunk = 512;
  const int32_t blocks_per_seq = (context + decode + 4 + bs - 1) / bs;
  kv::BlockManager blocks(
      {.num_blocks = batch * blocks_per_seq + 1, .block_size = bs, .enable_prefix_caching = false});
  sched::Scheduler scheduler(
      {.max_num_batched_tokens = std::max(chunk, batch), .max_num_seqs = batch}, &blocks);
  TESSERA_ASSIGN_OR_RETURN(
      model::PagedKvCache cache,
      model::PagedKvCache::create(&be, m.config(), blocks.num_blocks(), bs, DType::kF16));
  runtime::ModelRunner runner(&m, &cache,
                              {.max_num_batched_tokens = std::max(chunk, batch),
                               .max_num_seqs = batch,
                               .enable_graphs = graphs});
  for (int b = 0; b < batch; ++b) {
    sched::SeqRequest r;
    r.id = b + 1;
    for (int i = 0; i < context; ++i) {
      r.prompt.push_back(static_cast<int32_t>((i * 7919 + b * 104729) % 128000));
    }
    r.max_new_tokens = decode + 8;
    TESSERA_RETURN_IF_ERROR(scheduler.add_request(r));
  }
  const bool on_device = be.is_device();
  OwnedTensor host_ids(DType::kI32, {batch});
  const std::vector<backend::SampleParams> greedy(batch, backend::SampleParams{.temperature = 0});
  // One step; returns whether it was a pure decode (every sequence sampled).
  const auto step = [&]() -> Result<bool> {
    const sched::SchedulerOutput out = scheduler.schedule();
    TESSERA_ASSIGN_OR_RETURN(runtime::StepLogits l, runner.execute(out, scheduler, on_device));
    const int64_t n = static_cast<int64_t>(l.seq_ids.size());
    if (n > 0 && l.in_backend) {
      TESSERA_RETURN_IF_ERROR(
          be.sample(l.logits, std::span(greedy).first(n), host_ids.view().slice_rows(0, n)));
    }
    for (int64_t i = 0; i < n; ++i) {
      const int32_t t = l.in_backend ? host_ids.data_as<int32_t>()[i]
                                     : sampling::argmax(std::span<const float>(
                                           l.logits.row(i).data_as<const float>(),
                                           static_cast<size_t>(m.config().vocab_size)));
      scheduler.append_token(l.seq_ids[i], t);
    }
    return n == batch && static_cast<int>(out.seqs.size()) == batch &&
           out.num_batched_tokens == batch;
  };
  DecodeRun run;
  auto t0 = Clock::now();
  for (bool decoding = false; !decoding;) {
    TESSERA_ASSIGN_OR_RETURN(decoding, step());
  }
  run.prefill_s = seconds_since(t0);
  for (int i = 0; i < 2; ++i) TESSERA_RETURN_IF_ERROR(step().status());
  for (int i = 0; i < decode; ++i) {
    t0 = Clock::now();
    TESSERA_RETURN_IF_ERROR(step().status());
    run.steps_s.push_back(seconds_since(t0));
  }
  std::sort(run.steps_s.begin(), run.steps_s.end());
  run.stats = runner.stats();
  return run;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace tessera;
  CLI::App app{"decode step of a Llama-3-8B-shaped model with random weights, vs its floor"};
  std::string backend_name = "cpu", dtype_name_arg = "bf16";
  int threads = 0, layers = 32, context = 1024, decode = 16, batch = 1;
  app.add_option("--backend", backend_name, "cpu | reference | cuda | emulated")
      ->capture_default_str();
  app.add_option("--threads,-t", threads, "CPU threads (0: all cores)");
  app.add_option("--layers", layers, "transformer layers (8B has 32)")->capture_default_str();
  app.add_option("--dtype", dtype_name_arg, "weight dtype: bf16 | f16 | f32")
      ->capture_default_str();
  app.add_option("--context", context, "tokens prefilled before decoding")->capture_default_str();
  app.add_option("--decode", decode, "decode steps timed")->capture_default_str();
  app.add_option("--batch", batch, "sequences decoding together")->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  if (layers < 1 || context < 1 || decode < 1 || batch < 1) {
    fmt::print(stderr, "error: need --layers, --context, --decode and --batch >= 1\n");
    return 1;
  }
  const DType wdtype = dtype_name_arg == "f32"   ? DType::kF32
                       : dtype_name_arg == "f16" ? DType::kF16
                                                 : DType::kBF16;

  Result<std::unique_ptr<backend::Backend>> be = engine::open_backend(backend_name, threads);
  if (!be.ok()) {
    fmt::print(stderr, "error: {}\n", be.status().message());
    return 1;
  }
  const model::ModelConfig config = bench::llama3_8b_config(layers);
  const auto t_gen = Clock::now();
  auto weights = std::make_shared<bench::SyntheticWeights>(config, wdtype);
  const double gen_s = seconds_since(t_gen);
  model::LlamaOptions options;
  options.max_context = context + decode + 8;  // + the untimed warm-up steps
  options.max_chunk = std::min(context, 512);
  options.kv_dtype = DType::kF16;
  const auto t_load = Clock::now();
  auto created = model::LlamaModel::create(config, weights, be->get(), options);
  if (!created.ok()) {
    fmt::print(stderr, "error: {}\n", created.status().message());
    return 1;
  }
  model::LlamaModel& m = **created;
  const double load_s = seconds_since(t_load);
  Result<double> bw = copy_bandwidth(**be);
  if (!bw.ok()) {
    fmt::print(stderr, "error: bandwidth probe: {}\n", bw.status().message());
    return 1;
  }

  // Op by op first, then with graphs (the serving default) when the backend has them.
  Result<DecodeRun> eager = run_decode(m, **be, batch, context, decode, /*graphs=*/false);
  Result<DecodeRun> graphs = eager;
  const bool has_graphs = (*be)->supports_graphs();
  if (eager.ok() && has_graphs) graphs = run_decode(m, **be, batch, context, decode, true);
  if (!eager.ok() || !graphs.ok()) {
    fmt::print(stderr, "error: {}\n", (eager.ok() ? graphs : eager).status().message());
    return 1;
  }
  const double median_s = graphs->median_s();
  const int64_t kv_bytes = static_cast<int64_t>(context) * batch * layers * 2 *
                           config.num_key_value_heads * config.head_dim * 2;
  const int64_t step_bytes = weights->total_bytes() - weights->embedding_bytes() + kv_bytes;
  const double floor_s = static_cast<double>(step_bytes) / *bw;
  nlohmann::json out = {
      {"bench", "model_decode"},
      {"shape", "llama3-8b"},
      {"layers", layers},
      {"weight_dtype", dtype_name(wdtype)},
      {"kv_dtype", "f16"},
      {"backend", (*be)->name()},
      {"context", context},
      {"batch", batch},
      {"generate_s", gen_s},
      {"load_s", load_s},
      {"prefill_s", eager->prefill_s},
      {"prefill_tok_s", batch * context / eager->prefill_s},
      {"decode_step_ms_median", median_s * 1e3},
      {"decode_step_ms_best", graphs->steps_s.front() * 1e3},
      {"graphs", has_graphs},
      {"graph_replays", graphs->stats.graph_replays},
      {"eager_step_ms_median", eager->median_s() * 1e3},
      {"graph_speedup", eager->median_s() / median_s},
      {"copy_bandwidth_gb_s", *bw / 1e9},
      {"step_bytes", step_bytes},
      {"floor_ms", floor_s * 1e3},
      {"fraction_of_floor", floor_s / median_s},
  };
  fmt::print("{}\n", out.dump());
  return 0;
}
