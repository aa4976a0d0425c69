// The transformers golden fixtures of the tiny models (scripts/make_*_fixtures.py write
// <dir>/golden.json plus a raw f32 logits file) and the error measure the model tests use.
// Invariant: header-only, test code only.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace tessera::model::testing {

struct Golden {
  std::vector<int32_t> tokens, prompt, greedy;
  int64_t vocab = 0;
  std::vector<float> logits;  // [tokens, vocab] teacher-forced over `tokens`
};

inline Golden read_golden(const std::string& dir) {
  Golden g;
  std::ifstream in(dir + "/golden.json");
  EXPECT_TRUE(in) << dir;
  nlohmann::json j = nlohmann::json::parse(in);
  g.tokens = j["tokens"].get<std::vector<int32_t>>();
  g.prompt = j["prompt"].get<std::vector<int32_t>>();
  g.greedy = j["greedy"].get<std::vector<int32_t>>();
  g.vocab = j["vocab_size"].get<int64_t>();
  g.logits.resize(g.tokens.size() * g.vocab);
  std::ifstream bin(dir + "/" + j["logits_file"].get<std::string>(), std::ios::binary);
  bin.read(reinterpret_cast<char*>(g.logits.data()), g.logits.size() * sizeof(float));
  EXPECT_TRUE(bin) << "short logits file in " << dir;
  return g;
}

// max |a - b| / max |b| over n values.
inline double relative_error(const float* a, const float* b, size_t n) {
  double max_diff = 0.0, max_ref = 0.0;
  for (size_t i = 0; i < n; ++i) {
    max_diff = std::max(max_diff, std::abs(static_cast<double>(a[i]) - b[i]));
    max_ref = std::max(max_ref, std::abs(static_cast<double>(b[i])));
  }
  return max_diff / max_ref;
}

}  // namespace tessera::model::testing
