// Device sampling in the engine: on a device backend (the emulated one: a CPU backend whose
// memory the host cannot read) plain requests keep their logits in backend memory and draw with
// Backend::sample, others take the host path (download + SequenceSampler). Both use one random
// stream, Philox(seed, step), so every request gives the CPU engine's tokens (host path there).
#include <gtest/gtest.h>

#include <memory>
#include <random>
#include <string>
#include <vector>

#include "tessera/backend/backend.h"
#include "tessera/backend/cuda_backend.h"
#include "tessera/backend/emulated_device.h"
#include "tessera/engine/engine.h"
#include "tessera/model/model_loader.h"
#include "tests/models/engine_test_util.h"

namespace tessera::engine::testing {
namespace {

// The tiny Llama on `be` (the emulated device when null), with an engine.
std::unique_ptr<TestEngine> open_emulated(EngineConfig config,
                                          std::unique_ptr<backend::Backend> be = nullptr) {
  auto t = std::make_unique<TestEngine>();
  t->pretrained.backend =
      be ? std::move(be) : backend::make_emulated_device_backend(backend::make_cpu_backend());
  model::LlamaOptions options;
  options.max_context = 256;
  Result<model::LoadedModel> m = model::load_model(kTinyDir, t->pretrained.backend.get(), options);
  EXPECT_TRUE(m.ok()) << m.status().message();
  if (!m.ok()) return nullptr;
  t->pretrained.loaded = std::move(m).value();
  Result<text::Tokenizer> tok = text::tokenizer_from_json_file(kTinyDir);
  EXPECT_TRUE(tok.ok()) << tok.status().message();
  if (!tok.ok()) return nullptr;
  t->pretrained.tokenizer.emplace(std::move(tok).value());
  Result<std::unique_ptr<Engine>> e =
      Engine::create(&t->pretrained.model(), &*t->pretrained.tokenizer, config);
  EXPECT_TRUE(e.ok()) << e.status().message();
  if (!e.ok()) return nullptr;
  t->engine = std::move(e).value();
  return t;
}

EngineConfig config() {
  EngineConfig c;
  c.seed = 77;
  return c;
}

std::vector<int32_t> prompt(int len, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int32_t> p(len);
  for (int32_t& id : p) id = static_cast<int32_t>(rng() % 288);  // the tiny vocab
  return p;
}

GenerateRequest request(uint32_t prompt_seed, float temperature, int32_t top_k, float top_p,
                        float min_p, int n = 1) {
  GenerateRequest r;
  r.prompt_tokens = prompt(5 + static_cast<int>(prompt_seed % 9), prompt_seed);
  r.sampling.temperature = temperature;
  r.sampling.top_k = top_k;
  r.sampling.top_p = top_p;
  r.sampling.min_p = min_p;
  r.sampling.seed = 1000 + prompt_seed;
  r.n = n;
  r.max_tokens = 12;
  r.ignore_eos = true;
  return r;
}

// Greedy, temperature only, top-k, top-p, min-p, all three, a temperature below 1e-5 (greedy on
// both paths), n = 2 and n = 3 seeded.
std::vector<GenerateRequest> plain_requests() {
  return {request(1, 0.0f, 0, 1.0f, 0.0f),    request(2, 1.0f, 0, 1.0f, 0.0f),
          request(3, 0.8f, 20, 1.0f, 0.0f),   request(4, 1.2f, 0, 0.9f, 0.0f),
          request(5, 1.0f, 0, 1.0f, 0.05f),   request(6, 0.7f, 40, 0.95f, 0.02f),
          request(7, 5e-6f, 0, 1.0f, 0.0f),   request(8, 1.0f, 0, 0.95f, 0.0f, /*n=*/2),
          request(9, 0.9f, 50, 1.0f, 0.0f, 3)};
}

TEST(EngineDeviceSampling, PlainRequestsSampleOnTheDeviceAndMatchTheCpuEngine) {
  auto cpu = open_engine("tiny", config());
  auto dev = open_emulated(config());
  ASSERT_TRUE(cpu && dev);
  int64_t want_tokens = 0;
  for (const GenerateRequest& r : plain_requests()) {
    SCOPED_TRACE(r.prompt_tokens.size());
    const Gathered a = run_one(*cpu->engine, r);
    const Gathered b = run_one(*dev->engine, r);
    ASSERT_TRUE(b.error.ok()) << b.error.message();
    ASSERT_EQ(a.tokens.size(), static_cast<size_t>(r.n));
    for (int i = 0; i < r.n; ++i) {
      EXPECT_EQ(a.tokens[i].size(), 12u);
      EXPECT_EQ(b.tokens[i], a.tokens[i]) << "choice " << i;
    }
    want_tokens += 12 * r.n;
  }
  // Every token of the emulated engine came from Backend::sample; none of the CPU engine's.
  // (Stats are published after the step's outputs.)
  EXPECT_TRUE(eventually([&] { return dev->engine->stats().generation_tokens == want_tokens; }));
  EXPECT_EQ(dev->engine->stats().device_sampled_tokens, want_tokens);
  EXPECT_EQ(cpu->engine->stats().device_sampled_tokens, 0);
  // n = 3 choices differ from one another (their streams are seed + index).
  const Gathered three = run_one(*dev->engine, plain_requests().back());
  EXPECT_TRUE(three.tokens[0] != three.tokens[1] || three.tokens[1] != three.tokens[2]);
}

TEST(EngineDeviceSampling, OtherRequestsTakeTheHostPathAndMatchTheCpuEngine) {
  auto cpu = open_engine("tiny", config());
  auto dev = open_emulated(config());
  ASSERT_TRUE(cpu && dev);
  GenerateRequest logprobs = request(11, 1.0f, 0, 0.9f, 0.0f);
  logprobs.sampling.logprobs = true;
  logprobs.sampling.top_logprobs = 2;
  GenerateRequest penalty = request(12, 0.8f, 30, 1.0f, 0.0f);
  penalty.sampling.presence_penalty = 1.5f;
  for (const GenerateRequest& r : {logprobs, penalty}) {
    const Gathered a = run_one(*cpu->engine, r);
    const Gathered b = run_one(*dev->engine, r);
    ASSERT_TRUE(b.error.ok()) << b.error.message();
    EXPECT_EQ(b.tokens[0].size(), 12u);
    EXPECT_EQ(b.tokens[0], a.tokens[0]);
  }
  EXPECT_TRUE(eventually([&] { return dev->engine->stats().generation_tokens == 24; }));
  EXPECT_EQ(dev->engine->stats().device_sampled_tokens, 0);
}

// min_tokens: the first min_tokens draws (eos / stop ids masked) run on the host, the rest on the
// device, and the tokens are still the CPU engine's (one stream).
TEST(EngineDeviceSampling, MinTokensMovesToTheDeviceOnceItsMaskLifts) {
  auto cpu = open_engine("tiny", config());
  auto dev = open_emulated(config());
  ASSERT_TRUE(cpu && dev);
  GenerateRequest r = request(13, 1.0f, 0, 1.0f, 0.0f);
  r.min_tokens = 3;
  r.stop_token_ids = {7, 11};  // masked for the first 3 tokens: the draws differ if ignored
  const Gathered a = run_one(*cpu->engine, r);
  const Gathered b = run_one(*dev->engine, r);
  ASSERT_TRUE(b.error.ok()) << b.error.message();
  EXPECT_EQ(b.tokens[0], a.tokens[0]);
  const int64_t n = static_cast<int64_t>(a.tokens[0].size());
  ASSERT_GE(n, 3);
  EXPECT_TRUE(eventually([&] { return dev->engine->stats().generation_tokens == n; }));
  EXPECT_EQ(dev->engine->stats().device_sampled_tokens, n - 3);
}

// A plain request batched with a logprobs one: the steps they share fall back to the host and
// those alone run on the device; the plain request's stream stays in step either way.
TEST(EngineDeviceSampling, MixedStepsKeepOneStream) {
  auto cpu = open_engine("tiny", config());
  auto dev = open_emulated(config());
  ASSERT_TRUE(cpu && dev);
  GenerateRequest plain = request(21, 1.0f, 0, 0.9f, 0.0f);
  plain.max_tokens = 16;
  GenerateRequest logprobs = request(22, 0.9f, 25, 1.0f, 0.0f);
  logprobs.sampling.logprobs = true;
  logprobs.max_tokens = 6;  // ends first: the plain request's last steps run on the device
  const Gathered want_plain = run_one(*cpu->engine, plain);
  const Gathered want_logprobs = run_one(*cpu->engine, logprobs);
  Sink a, b;
  // The plain request arrives from the logprobs one's first output (on the engine thread), so
  // their steps overlap whatever the timing.
  bool submitted = false;
  OutputCallback on_logprobs = [&, inner = b.callback()](RequestOutput out) {
    if (!submitted) {
      submitted = true;
      EXPECT_TRUE(dev->engine->submit(plain, a.callback()).ok());
    }
    inner(std::move(out));
  };
  ASSERT_TRUE(dev->engine->submit(logprobs, on_logprobs).ok());
  const Gathered got_plain = a.wait();
  const Gathered got_logprobs = b.wait();
  EXPECT_EQ(got_plain.tokens[0], want_plain.tokens[0]);
  EXPECT_EQ(got_logprobs.tokens[0], want_logprobs.tokens[0]);
  EXPECT_TRUE(eventually([&] { return dev->engine->stats().generation_tokens == 22; }));
  const int64_t on_device = dev->engine->stats().device_sampled_tokens;
  EXPECT_GT(on_device, 0);
  EXPECT_LT(on_device, 16);
}

// On one device backend: each plain request (device path) gives the tokens of the same request
// with logprobs on (host path: the logits downloaded, SequenceSampler), the same logits either
// way. On CUDA this checks the sampling kernel end to end against the host sampler.
void check_device_path_equals_host_path(std::unique_ptr<backend::Backend> be) {
  auto dev = open_emulated(config(), std::move(be));
  ASSERT_TRUE(dev);
  int64_t want_device = 0;
  for (GenerateRequest r : plain_requests()) {
    r.n = 1;
    const Gathered on_device = run_one(*dev->engine, r);
    r.sampling.logprobs = true;
    const Gathered on_host = run_one(*dev->engine, r);
    ASSERT_TRUE(on_device.error.ok()) << on_device.error.message();
    ASSERT_TRUE(on_host.error.ok()) << on_host.error.message();
    EXPECT_EQ(on_device.tokens[0], on_host.tokens[0]) << r.prompt_tokens.size();
    want_device += 12;
  }
  EXPECT_TRUE(
      eventually([&] { return dev->engine->stats().generation_tokens == 2 * want_device; }));
  EXPECT_EQ(dev->engine->stats().device_sampled_tokens, want_device);
}

TEST(EngineDeviceSampling, DevicePathEqualsHostPathOnOneBackend) {
  check_device_path_equals_host_path(nullptr);
}

TEST(EngineDeviceSampling, DevicePathEqualsHostPathOnOneBackend__cuda) {
  Result<std::unique_ptr<backend::CudaBackend>> cuda = backend::make_cuda_backend();
  if (!cuda.ok()) GTEST_SKIP() << "no CUDA device: " << cuda.status().message();
  check_device_path_equals_host_path(std::move(cuda).value());
}

}  // namespace
}  // namespace tessera::engine::testing
