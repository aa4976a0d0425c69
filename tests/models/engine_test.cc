// Engine on real models (the tiny golden llama, and SmolLM2 when present): concurrent greedy ==
// one at a time (also under preemption), prefix-cache hits == misses, seeded sampling alone ==
// inside a busy batch, n = 3 reproducible, stop strings across tokens, min_tokens, abort,
// drain and the context-length error.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "tessera/text/tokenizer.h"
#include "tests/models/engine_test_util.h"

namespace tessera::engine::testing {
namespace {

class EngineTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(model_path(GetParam()))) {
      GTEST_SKIP() << model_path(GetParam()) << " is absent";
    }
  }
  std::unique_ptr<TestEngine> open(EngineConfig config = {}) {
    config.seed = 1234;
    return open_engine(GetParam(), config);
  }
  int64_t vocab(TestEngine& t) { return t.pretrained.model().vocab_size(); }
  // Random prompt tokens; a fixed first part when `shared` > 0.
  std::vector<int32_t> prompt(TestEngine& t, int len, uint32_t seed, int shared = 0) {
    std::mt19937 rng(seed);
    std::mt19937 shared_rng(99);
    std::vector<int32_t> p(len);
    for (int i = 0; i < len; ++i) {
      p[i] = static_cast<int32_t>((i < shared ? shared_rng() : rng()) % vocab(t));
    }
    return p;
  }
  GenerateRequest greedy(std::vector<int32_t> p, int max_tokens) {
    GenerateRequest r;
    r.prompt_tokens = std::move(p);
    r.sampling.temperature = 0.0f;
    r.max_tokens = max_tokens;
    r.ignore_eos = true;
    return r;
  }
};

// 16 requests of mixed prompt lengths submitted from 4 threads at once give the same greedy
// tokens as each run alone.
void check_concurrent_equals_sequential(EngineTest* test, TestEngine& t,
                                        std::vector<GenerateRequest> requests) {
  std::vector<Gathered> solo;
  for (const GenerateRequest& r : requests) solo.push_back(run_one(*t.engine, r));
  std::vector<std::unique_ptr<Sink>> sinks;
  for (size_t i = 0; i < requests.size(); ++i) sinks.push_back(std::make_unique<Sink>());
  std::vector<std::thread> threads;
  for (int th = 0; th < 4; ++th) {
    threads.emplace_back([&, th] {
      for (size_t i = th; i < requests.size(); i += 4) {
        Result<RequestId> id = t.engine->submit(requests[i], sinks[i]->callback());
        EXPECT_TRUE(id.ok()) << id.status().message();
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (size_t i = 0; i < requests.size(); ++i) {
    Gathered g = sinks[i]->wait();
    EXPECT_EQ(g.num_final, 1);
    EXPECT_EQ(g.tokens[0], solo[i].tokens[0]) << "request " << i;
    EXPECT_EQ(g.text[0], solo[i].text[0]) << "request " << i;
    EXPECT_EQ(g.finish[0], FinishReason::kLength);
  }
  (void)test;
}

TEST_P(EngineTest, ConcurrentGreedyEqualsOneAtATime) {
  auto t = open();
  ASSERT_TRUE(t);
  std::vector<GenerateRequest> requests;
  for (int i = 0; i < 16; ++i)
    requests.push_back(greedy(prompt(*t, 3 + 11 * i % 70, i), 6 + i % 5));
  check_concurrent_equals_sequential(this, *t, requests);
  EXPECT_EQ(t->engine->stats().num_preemptions, 0);
}

TEST_P(EngineTest, ConcurrentGreedyEqualsOneAtATimeUnderPreemption) {
  EngineConfig config;
  config.block_size = 4;
  config.num_kv_blocks = 40;  // 160 tokens for 16 requests of up to ~80: forces preemption
  config.max_num_batched_tokens = 64;
  auto t = open(config);
  ASSERT_TRUE(t);
  std::vector<GenerateRequest> requests;
  for (int i = 0; i < 16; ++i)
    requests.push_back(greedy(prompt(*t, 5 + 7 * i % 50, i), 10 + i % 7));
  check_concurrent_equals_sequential(this, *t, requests);
  EXPECT_GT(t->engine->stats().num_preemptions, 0);
  EXPECT_TRUE(eventually([&] { return t->engine->stats().kv_cache_usage == 0.0; }));
}

TEST_P(EngineTest, PrefixCacheHitGivesTheSameOutput) {
  auto t = open();
  ASSERT_TRUE(t);
  const std::vector<int32_t> p = prompt(*t, 90, 5);
  Gathered miss = run_one(*t->engine, greedy(p, 8));
  EXPECT_EQ(miss.num_cached_prompt_tokens, 0);
  Gathered hit = run_one(*t->engine, greedy(p, 8));
  EXPECT_EQ(hit.num_cached_prompt_tokens, 80);  // whole 16-token blocks, the last token computed
  EXPECT_EQ(hit.tokens[0], miss.tokens[0]);
  const EngineStats s = t->engine->stats();
  EXPECT_GE(s.prefix_cache_hits, 80);
  EXPECT_GE(s.prefix_cache_queries, 180);
  // A different salt does not share.
  GenerateRequest salted = greedy(p, 8);
  salted.cache_salt = 7;
  Gathered other = run_one(*t->engine, salted);
  EXPECT_EQ(other.num_cached_prompt_tokens, 0);
  EXPECT_EQ(other.tokens[0], miss.tokens[0]);
}

TEST_P(EngineTest, SeededSamplingAloneEqualsInsideABusyBatch) {
  auto t = open();
  ASSERT_TRUE(t);
  GenerateRequest r;
  r.prompt_tokens = prompt(*t, 20, 3);
  r.sampling.temperature = 0.9f;
  r.sampling.top_p = 0.95f;
  r.sampling.seed = 42;
  r.max_tokens = 12;
  r.ignore_eos = true;
  Gathered alone = run_one(*t->engine, r);
  std::vector<std::unique_ptr<Sink>> others;
  for (int i = 0; i < 6; ++i) {
    GenerateRequest o = r;
    o.prompt_tokens = prompt(*t, 10 + 9 * i, 100 + i);
    o.sampling.seed.reset();
    others.push_back(std::make_unique<Sink>());
    ASSERT_TRUE(t->engine->submit(o, others.back()->callback()).ok());
  }
  Gathered busy = run_one(*t->engine, r);
  for (auto& s : others) s->wait();
  EXPECT_EQ(busy.tokens[0], alone.tokens[0]);
  EXPECT_EQ(busy.text[0], alone.text[0]);
}

TEST_P(EngineTest, SeededChoicesAreReproducible) {
  auto t = open();
  ASSERT_TRUE(t);
  GenerateRequest r;
  r.prompt_tokens = prompt(*t, 37, 8);
  r.sampling.temperature = 1.0f;
  r.sampling.seed = 7;
  r.n = 3;
  r.max_tokens = 10;
  r.ignore_eos = true;
  Gathered a = run_one(*t->engine, r);
  Gathered b = run_one(*t->engine, r);
  ASSERT_EQ(a.tokens.size(), 3u);
  EXPECT_EQ(a.num_final, 1);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(a.tokens[i], b.tokens[i]) << "choice " << i;
    EXPECT_EQ(a.tokens[i].size(), 10u);
    EXPECT_EQ(a.finish[i], FinishReason::kLength);
  }
  EXPECT_TRUE(a.tokens[0] != a.tokens[1] || a.tokens[1] != a.tokens[2]);
  EXPECT_TRUE(eventually([&] { return t->engine->stats().kv_cache_usage == 0.0; }));
}

TEST_P(EngineTest, StopStringAcrossTokensIsTrimmed) {
  auto t = open();
  ASSERT_TRUE(t);
  GenerateRequest r = greedy(prompt(*t, 12, 21), 24);
  Gathered full = run_one(*t->engine, r);
  const text::Tokenizer& tok = *t->pretrained.tokenizer;
  // A stop string made of the end of one token's text and the start of a later one's.
  std::vector<std::string> pieces;
  for (int32_t id : full.tokens[0]) pieces.push_back(tok.decode(std::vector<int32_t>{id}, true));
  std::string stop;
  auto ascii = [](char c) { return (static_cast<unsigned char>(c) & 0x80) == 0; };
  for (size_t k = 4; k + 1 < pieces.size() && stop.empty(); ++k) {
    const std::string& a = pieces[k];
    const std::string& b = pieces[k + 1];
    if (!a.empty() && !b.empty() && ascii(a.back()) && ascii(b.front())) {
      stop = std::string(1, a.back()) + b.front();
    }
  }
  if (stop.empty()) GTEST_SKIP() << "no ASCII token boundary in the greedy text";
  const size_t at = full.text[0].find(stop);
  ASSERT_NE(at, std::string::npos);
  r.stop = {"never-in-the-text-xyz", stop};
  Gathered cut = run_one(*t->engine, r);
  EXPECT_EQ(cut.text[0], full.text[0].substr(0, at));
  EXPECT_EQ(cut.finish[0], FinishReason::kStop);
  EXPECT_EQ(cut.stop_reason[0], stop);
  r.include_stop_str_in_output = true;
  Gathered kept = run_one(*t->engine, r);
  EXPECT_EQ(kept.text[0], full.text[0].substr(0, at + stop.size()));
}

TEST_P(EngineTest, MinTokensMasksStopIds) {
  auto t = open();
  ASSERT_TRUE(t);
  GenerateRequest r = greedy(prompt(*t, 15, 4), 6);
  Gathered free_run = run_one(*t->engine, r);
  r.stop_token_ids = {free_run.tokens[0][0]};
  Gathered stopped = run_one(*t->engine, r);
  EXPECT_EQ(stopped.tokens[0], std::vector<int32_t>{free_run.tokens[0][0]});
  EXPECT_EQ(stopped.finish[0], FinishReason::kStop);
  EXPECT_EQ(stopped.text[0], "");
  r.min_tokens = 4;
  Gathered held = run_one(*t->engine, r);
  ASSERT_GE(held.tokens[0].size(), 4u);
  for (int i = 0; i < 4; ++i) EXPECT_NE(held.tokens[0][i], free_run.tokens[0][0]);
}

TEST_P(EngineTest, AbortMidStreamFreesEveryBlock) {
  auto t = open();
  ASSERT_TRUE(t);
  std::atomic<int> outputs{0};
  std::atomic<RequestId> id{0};
  Sink sink;
  OutputCallback inner = sink.callback();
  Engine* engine = t->engine.get();
  GenerateRequest r = greedy(prompt(*t, 40, 9), 200);
  Result<RequestId> submitted = engine->submit(r, [&, inner](RequestOutput out) {
    if (++outputs == 3) {
      while (id.load() == 0) std::this_thread::yield();
      engine->abort(id.load());
    }
    inner(std::move(out));
  });
  ASSERT_TRUE(submitted.ok());
  id = *submitted;
  Gathered g = sink.wait();
  EXPECT_EQ(g.num_final, 1);
  EXPECT_EQ(g.finish[0], FinishReason::kAbort);
  EXPECT_LT(g.tokens[0].size(), 200u);
  EXPECT_TRUE(eventually([&] { return engine->stats().kv_cache_usage == 0.0; }));
  engine->abort(*submitted);  // finished ids are ignored
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(g.num_final, 1);
}

TEST_P(EngineTest, DrainRefusesNewWorkAndAbortsStragglers) {
  auto t = open();
  ASSERT_TRUE(t);
  Sink straggler;
  OutputCallback inner = straggler.callback();
  // A slow consumer keeps the straggler running well past the deadline (even on the tiny model).
  auto slow = [inner](RequestOutput out) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    inner(std::move(out));
  };
  ASSERT_TRUE(t->engine->submit(greedy(prompt(*t, 30, 2), 220), slow).ok());
  Sink quick;
  ASSERT_TRUE(t->engine->submit(greedy(prompt(*t, 8, 3), 2), quick.callback()).ok());
  t->engine->drain(std::chrono::steady_clock::now() + std::chrono::seconds(2));
  EXPECT_EQ(quick.wait().finish[0], FinishReason::kLength);
  Gathered g = straggler.wait();
  EXPECT_EQ(g.finish[0], FinishReason::kAbort);
  EXPECT_EQ(g.num_final, 1);
  Sink late;
  Result<RequestId> refused = t->engine->submit(greedy(prompt(*t, 8, 3), 2), late.callback());
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
}

TEST_P(EngineTest, ContextLengthErrorIsWordedLikeOpenAI) {
  EngineConfig config;
  config.max_model_len = 64;
  auto t = open(config);
  ASSERT_TRUE(t);
  Sink sink;
  Result<RequestId> r = t->engine->submit(greedy(prompt(*t, 60, 1), 10), sink.callback());
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            "This model's maximum context length is 64 tokens. However, you requested 70 tokens "
            "(60 in the messages, 10 in the completion). Please reduce the length of the "
            "messages or completion.");
  // Without max_tokens the completion runs to the context limit.
  GenerateRequest open_ended = greedy(prompt(*t, 60, 1), 1);
  open_ended.max_tokens.reset();
  Gathered g = run_one(*t->engine, open_ended);
  EXPECT_EQ(g.tokens[0].size(), 4u);
  EXPECT_EQ(g.finish[0], FinishReason::kLength);
  GenerateRequest bad = greedy({}, 4);
  EXPECT_FALSE(t->engine->submit(bad, sink.callback()).ok());
  bad = greedy({static_cast<int32_t>(vocab(*t))}, 4);
  EXPECT_FALSE(t->engine->submit(bad, sink.callback()).ok());
  bad = greedy({1, 2}, 4);
  bad.n = 129;
  EXPECT_FALSE(t->engine->submit(bad, sink.callback()).ok());
}

INSTANTIATE_TEST_SUITE_P(Models, EngineTest,
                         ::testing::Values("tiny", "smollm2", "deepseek_v3", "deepseek_v2",
                                           "mixtral"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tessera::engine::testing
