// Tokenizer tests against HF `tokenizers` goldens (scripts/make_tokenizer_fixtures.py): exact
// ids, decode, lossy decode of split UTF-8, streaming detokenization, and GGUF == tokenizer.json.
// Invariant: no expected value here is produced by our own code.
#include "tessera/text/tokenizer.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "tessera/model/gguf.h"
#include "tessera/text/detokenizer.h"

namespace tessera::text {
namespace {

using nlohmann::json;

const std::string kFixtures = std::string(TESSERA_FIXTURES_DIR) + "/tokenizers";
const std::string kSmolLm2Gguf =
    std::string(TESSERA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";

json read_json(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

Tokenizer load(const std::string& name) {
  auto tok = tokenizer_from_json_file(kFixtures + "/" + name);
  TESSERA_CHECK(tok.ok(), "{}", tok.status().message());
  return std::move(tok).value();
}

// True when `s` is valid UTF-8 (an independent check, not the library's own helper).
bool valid_utf8(const std::string& s) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || i + len > s.size()) return false;
    uint32_t cp = len == 1 ? c : c & (0x7F >> len);
    for (int k = 1; k < len; ++k) {
      const auto d = static_cast<unsigned char>(s[i + k]);
      if ((d & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (d & 0x3F);
    }
    const uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[len] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

std::vector<int32_t> ids_of(const json& j) { return j.get<std::vector<int32_t>>(); }

// The fixtures' lstrip/rstrip tokens: HF strips the whitespace around them, so such texts do
// not round-trip, and GGUF (which has no such flags) tokenizes them differently.
bool has_stripping_token(const std::string& text) {
  return text.find("<|mask|>") != std::string::npos ||
         text.find("<\xEF\xBD\x9Cmask\xEF\xBD\x9C>") != std::string::npos;
}

class TokenizerGolden : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override { golden_ = read_json(kFixtures + "/" + GetParam() + "/golden.json"); }
  json golden_;
};

TEST_P(TokenizerGolden, EncodeMatchesHf) {
  const Tokenizer tok = load(GetParam());
  ASSERT_GE(golden_["cases"].size(), 60u);
  for (const json& c : golden_["cases"]) {
    const std::string text = c["text"];
    EXPECT_EQ(tok.encode(text, false), ids_of(c["ids"])) << "text: " << text;
    EXPECT_EQ(tok.encode(text, true), ids_of(c["ids_with_special"])) << "text: " << text;
  }
}

TEST_P(TokenizerGolden, RandomStringsMatchHf) {  // regex edge cases: PCRE2 vs HF's engine
  const Tokenizer tok = load(GetParam());
  ASSERT_GE(golden_["random_cases"].size(), 100u);
  int mismatches = 0;
  for (const json& c : golden_["random_cases"]) {
    const std::string text = c["text"];
    const auto ids = tok.encode(text, false);
    if (ids != ids_of(c["ids"]) && ++mismatches <= 10) {
      ADD_FAILURE() << "text: " << json(text).dump() << "\n got: " << json(ids).dump()
                    << "\nwant: " << c["ids"].dump();
    }
    EXPECT_EQ(tok.decode(ids, false), text);
  }
  EXPECT_EQ(mismatches, 0);
}

TEST_P(TokenizerGolden, DecodeMatchesHf) {
  const Tokenizer tok = load(GetParam());
  for (const json& c : golden_["cases"]) {
    const auto ids = ids_of(c["ids"]);
    EXPECT_EQ(tok.decode(ids, false), c["decoded"].get<std::string>());
    EXPECT_EQ(tok.decode(ids, true), c["decoded_skip_special"].get<std::string>());
    if (!has_stripping_token(c["text"])) {
      EXPECT_EQ(tok.decode(ids, false), c["text"].get<std::string>()) << "round trip";
    }
  }
  for (const json& c : golden_["decode_cases"]) {  // split UTF-8: HF's U+FFFD placement
    EXPECT_EQ(tok.decode(ids_of(c["ids"]), false), c["decoded"].get<std::string>());
  }
}

TEST_P(TokenizerGolden, IncrementalDetokenizerMatchesDecode) {
  const Tokenizer tok = load(GetParam());
  auto check = [&](const std::vector<int32_t>& ids, bool skip, const std::string& expected) {
    IncrementalDetokenizer detok(tok, skip);
    std::string text;
    for (int32_t id : ids) {
      const std::string piece = detok.push(id);
      EXPECT_TRUE(valid_utf8(piece)) << "broken UTF-8 after id " << id;
      EXPECT_LE(detok.num_pending_bytes(), 3u);
      text += piece;
    }
    const std::string tail = detok.finish();
    EXPECT_TRUE(valid_utf8(tail));
    EXPECT_EQ(text + tail, expected);
  };
  for (const json& c : golden_["cases"]) {
    check(ids_of(c["ids"]), false, c["decoded"]);
    check(ids_of(c["ids"]), true, c["decoded_skip_special"]);
  }
  for (const json& c : golden_["decode_cases"]) check(ids_of(c["ids"]), false, c["decoded"]);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, TokenizerGolden,
                         ::testing::Values("smollm2", "llama3_style", "deepseek_v3_style",
                                           "qwen2_style"));

// Real tokenizer.json files too big to commit: `make_tokenizer_fixtures.py --external SRC OUT`
// writes OUT/{tokenizer.json, golden.json}; list OUT dirs in TESSERA_TOKENIZER_GOLDEN_DIRS.
TEST(Tokenizer, ExternalGoldens) {
  const char* dirs = std::getenv("TESSERA_TOKENIZER_GOLDEN_DIRS");
  if (dirs == nullptr) GTEST_SKIP() << "TESSERA_TOKENIZER_GOLDEN_DIRS is not set";
  std::stringstream list(dirs);
  for (std::string dir; std::getline(list, dir, ':');) {
    auto tok = tokenizer_from_json_file(dir);
    ASSERT_TRUE(tok.ok()) << tok.status().message();
    const json golden = read_json(dir + "/golden.json");
    for (const char* key : {"cases", "random_cases"}) {
      for (const json& c : golden[key]) {
        const std::string text = c["text"];
        EXPECT_EQ(tok->encode(text, false), ids_of(c["ids"])) << dir << ": " << text;
        if (c.contains("ids_with_special")) {
          EXPECT_EQ(tok->encode(text, true), ids_of(c["ids_with_special"])) << dir << ": " << text;
          EXPECT_EQ(tok->decode(ids_of(c["ids"]), false), c["decoded"].get<std::string>());
        }
      }
    }
  }
}

TEST(Tokenizer, RecognisesPreTokenizersByStructure) {
  EXPECT_EQ(load("smollm2").pre_tokenizer_name(), "smollm");
  EXPECT_EQ(load("llama3_style").pre_tokenizer_name(), "llama3");
  EXPECT_EQ(load("deepseek_v3_style").pre_tokenizer_name(), "deepseek-v3");
  EXPECT_EQ(load("qwen2_style").pre_tokenizer_name(), "qwen2");
}

TEST(Tokenizer, SpecialTokenIdsFromConfigAndTemplate) {
  const Tokenizer ds = load("deepseek_v3_style");  // tokenizer_config.json beside it
  EXPECT_EQ(ds.bos_id(), ds.token_to_id("<｜begin▁of▁sentence｜>"));
  EXPECT_EQ(ds.eos_id(), ds.token_to_id("<｜end▁of▁sentence｜>"));
  EXPECT_TRUE(ds.add_bos());
  const Tokenizer llama = load("llama3_style");  // TemplateProcessing only
  EXPECT_EQ(llama.bos_id(), llama.token_to_id("<|begin_of_text|>"));
  EXPECT_TRUE(llama.is_special(*llama.bos_id()));
  EXPECT_FALSE(llama.is_special(*llama.token_to_id("<tool>")));
  const Tokenizer smol = load("smollm2");
  EXPECT_EQ(smol.vocab_size(), 49152);
  EXPECT_FALSE(smol.add_bos());
  EXPECT_EQ(smol.token_to_piece(*smol.token_to_id("Ġthe")), " the");
}

TEST(IncrementalDetokenizer, HoldsBackSplitCharacters) {
  const Tokenizer tok = load("smollm2");
  // "é" is C3 A9; feed it as two single-byte tokens.
  const auto c3 = tok.token_to_id("Ã"), a9 = tok.token_to_id("©");
  ASSERT_TRUE(c3 && a9);
  IncrementalDetokenizer detok(tok);
  EXPECT_EQ(detok.push(*c3), "");
  EXPECT_EQ(detok.num_pending_bytes(), 1u);
  EXPECT_EQ(detok.push(*a9), "\xC3\xA9");
  EXPECT_EQ(detok.push(*c3), "");
  EXPECT_EQ(detok.finish(), "\xEF\xBF\xBD");
  EXPECT_EQ(detok.finish(), "");
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

TEST(Tokenizer, EncodesAMegabyteQuickly) {
  const Tokenizer tok = load("smollm2");
  const json golden = read_json(kFixtures + "/smollm2/golden.json");
  std::string corpus;
  for (const json& c : golden["cases"]) corpus += c["text"].get<std::string>() + "\n";
  // The golden corpus interleaved with pseudo-random words, so the word cache misses often.
  std::string text;
  uint64_t state = 12345;
  auto next = [&state] {
    return (state = state * 6364136223846793005ull + 1442695040888963407ull) >> 33;
  };
  while (text.size() < (1u << 20)) {
    text += corpus;
    for (int w = 0; w < 300; ++w) {
      text += ' ';
      for (uint64_t len = 1 + next() % 9; len > 0; --len)
        text += static_cast<char>('a' + next() % 26);
    }
  }
  const auto start = std::chrono::steady_clock::now();
  const auto ids = tok.encode(text, false);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(tok.decode(ids, false), text);
  std::printf("encode: %zu bytes -> %zu ids in %.3f s\n", text.size(), ids.size(), seconds);
#ifdef NDEBUG
  EXPECT_LT(seconds, 1.0);  // one core, shared machine; typically a fraction of that
#endif
}

TEST(Tokenizer, ConcurrentEncodesAgree) {
  const Tokenizer tok = load("deepseek_v3_style");
  const json golden = read_json(kFixtures + "/deepseek_v3_style/golden.json");
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int round = 0; round < 20; ++round) {
        for (const json& c : golden["cases"]) {
          if (tok.encode(c["text"].get<std::string>(), false) != ids_of(c["ids"])) ++mismatches;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(Tokenizer, LongWhitespaceRunsAndInvalidInput) {
  const Tokenizer tok = load("llama3_style");
  const std::string spaces(200000, ' ');
  EXPECT_EQ(tok.decode(tok.encode(spaces + "x" + spaces, false), false), spaces + "x" + spaces);
  // Invalid UTF-8 input is repaired to U+FFFD first, as a Rust String would hold it.
  EXPECT_EQ(tok.decode(tok.encode("a\xFF"
                                  "b\xE2\x82",
                                  false),
                       false),
            "a\xEF\xBF\xBD"
            "b\xEF\xBF\xBD");
}

TEST(Tokenizer, RejectsWhatItCannotReproduce) {
  EXPECT_FALSE(tokenizer_spec_from_json("not json", std::nullopt).ok());
  EXPECT_FALSE(tokenizer_spec_from_json(R"({"model": {"type": "WordPiece"}})", std::nullopt).ok());
  const std::string base = read_text(kFixtures + "/qwen2_style/tokenizer.json");
  json j = json::parse(base);
  j["pre_tokenizer"] = {{"type", "Metaspace"}};
  EXPECT_EQ(tokenizer_spec_from_json(j.dump(), std::nullopt).status().code(),
            StatusCode::kUnimplemented);
  j = json::parse(base);
  j["normalizer"] = {{"type", "NFKC"}};
  EXPECT_FALSE(tokenizer_spec_from_json(j.dump(), std::nullopt).ok());
  j = json::parse(base);
  j["model"]["merges"].push_back("zzz_not_a_token q");
  auto spec = tokenizer_spec_from_json(j.dump(), std::nullopt);
  ASSERT_TRUE(spec.ok());
  EXPECT_FALSE(Tokenizer::create(std::move(spec).value()).ok());
  auto unknown = pre_tokenizer_preset("no-such-pre");
  ASSERT_FALSE(unknown.ok());
  EXPECT_NE(unknown.status().message().find("smollm"), std::string::npos);
}

// The GGUF path must give the ids the tokenizer.json path gives.
void expect_gguf_matches_json(const std::string& gguf_path, const std::string& fixture,
                              const std::string& expected_pre) {
  auto gguf = model::GgufFile::open(gguf_path);
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  auto from_gguf = tokenizer_from_gguf(*gguf);
  ASSERT_TRUE(from_gguf.ok()) << from_gguf.status().message();
  const Tokenizer from_json = load(fixture);
  EXPECT_EQ(from_gguf->pre_tokenizer_name(), expected_pre);
  if (from_json.bos_id()) {
    EXPECT_EQ(from_gguf->bos_id(), from_json.bos_id());
  }
  EXPECT_EQ(from_gguf->add_bos(), from_json.add_bos());
  const json golden = read_json(kFixtures + "/" + fixture + "/golden.json");
  for (const json& c : golden["cases"]) {
    const std::string text = c["text"];
    if (has_stripping_token(text)) continue;
    const auto ids = from_gguf->encode(text, false);
    EXPECT_EQ(ids, ids_of(c["ids"])) << "text: " << text;
    EXPECT_EQ(from_gguf->encode(text, true), ids_of(c["ids_with_special"])) << "text: " << text;
    EXPECT_EQ(from_gguf->decode(ids, true), c["decoded_skip_special"].get<std::string>());
  }
}

TEST(TokenizerGguf, SmolLm2MatchesTokenizerJson) {
  if (!std::filesystem::exists(kSmolLm2Gguf)) {
    GTEST_SKIP() << "model file absent: " << kSmolLm2Gguf;
  }
  expect_gguf_matches_json(kSmolLm2Gguf, "smollm2", "smollm");
}

TEST(TokenizerGguf, Llama3StyleMatchesTokenizerJson) {
  expect_gguf_matches_json(kFixtures + "/llama3_style/tokenizer.gguf", "llama3_style", "llama3");
}

TEST(TokenizerGguf, DeepSeekV3StyleMatchesTokenizerJson) {
  expect_gguf_matches_json(kFixtures + "/deepseek_v3_style/tokenizer.gguf", "deepseek_v3_style",
                           "deepseek-v3");
}

}  // namespace
}  // namespace tessera::text
