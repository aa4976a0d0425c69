// Grammar matcher and token mask tests: JSON verdicts against Python's json module
// (tests/fixtures/grammar/json_cases.tsv from scripts/make_grammar_fixtures.py), literals and
// OneOf, limits, completion state, and masks that never allow a token breaking the grammar
// (checked by brute force), on a synthetic vocab and on SmolLM2's when the GGUF is present.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>

#include "tessera/model/gguf.h"
#include "tessera/sampling/grammar.h"
#include "tessera/text/tokenizer.h"

namespace tessera::sampling {
namespace {

std::string from_hex(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

bool matches(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  GrammarState s(g);
  return s.advance(text) && s.is_complete();
}

std::shared_ptr<const Grammar> make(std::vector<GrammarSegment> segs, GrammarLimits limits = {}) {
  auto g = Grammar::create(std::move(segs), limits);
  TESSERA_CHECK(g.ok(), "{}", g.status().message());
  return *g;
}

TEST(GrammarJson, MatchesPythonJsonVerdicts) {
  std::ifstream in(std::string(TESSERA_FIXTURES_DIR) + "/grammar/json_cases.tsv");
  ASSERT_TRUE(in) << "run scripts/make_grammar_fixtures.py";
  const auto any = Grammar::json(false);
  const auto object = Grammar::json(true);
  std::string hex;
  int verdict = 0, n = 0;
  while (in >> hex >> verdict) {
    const std::string text = from_hex(hex);
    EXPECT_EQ(matches(any, text), verdict == 1) << "case: " << text;
    const bool is_object = text.find_first_not_of(" \t\n\r") != std::string::npos &&
                           text[text.find_first_not_of(" \t\n\r")] == '{';
    EXPECT_EQ(matches(object, text), verdict == 1 && is_object) << "object case: " << text;
    ++n;
  }
  EXPECT_GT(n, 90);
}

TEST(GrammarJson, PrefixesOfValidDocumentsStayOpen) {
  const auto g = Grammar::json(true);
  const std::string doc = R"({"name": "f", "arguments": {"a": [1, -2.5e3, "\u00e9\n", true]}})";
  GrammarState s(g);
  for (size_t i = 0; i < doc.size(); ++i) {
    EXPECT_FALSE(s.is_complete()) << i;
    EXPECT_TRUE(s.can_continue()) << i;
    ASSERT_TRUE(s.advance(doc.substr(i, 1))) << "byte " << i;
  }
  EXPECT_TRUE(s.is_complete());
  EXPECT_FALSE(s.can_continue());
}

TEST(GrammarJson, FailedAdvanceLeavesStateUnchanged) {
  GrammarState s(Grammar::json(false));
  ASSERT_TRUE(s.advance("[1, "));
  EXPECT_FALSE(s.advance("2, ]"));
  EXPECT_TRUE(s.advance("2]"));
  EXPECT_TRUE(s.is_complete());
}

TEST(GrammarJson, TopLevelNumberCompletesButCanGrow) {
  GrammarState s(Grammar::json(false));
  ASSERT_TRUE(s.advance("12"));
  EXPECT_TRUE(s.is_complete());
  EXPECT_TRUE(s.can_continue());
  EXPECT_FALSE(s.advance(" "));  // no trailing whitespace inside the segment
}

TEST(GrammarJson, WhitespaceRunAndDepthAreBounded) {
  GrammarLimits limits;
  limits.max_whitespace_run = 4;
  limits.max_depth = 3;
  const auto g = make({GrammarSegment::json_value(false)}, limits);
  EXPECT_TRUE(matches(g, "[    1]"));
  EXPECT_FALSE(matches(g, "[     1]"));
  EXPECT_TRUE(matches(g, "[ \n \n1 \n \n]"));  // runs, not totals
  EXPECT_TRUE(matches(g, "[[[]]]"));
  EXPECT_FALSE(matches(g, "[[[[]]]]"));
  GrammarState s(g);
  ASSERT_TRUE(s.advance("[[["));
  EXPECT_FALSE(s.advance("["));
  EXPECT_TRUE(s.can_continue());
}

TEST(GrammarSegments, LiteralsAndOneOf) {
  const auto g = make({GrammarSegment::literal("<a>"),
                       GrammarSegment::one_of({"\"get\"", "\"get_weather\"", "\"put\""}),
                       GrammarSegment::literal(":"), GrammarSegment::json_value(true),
                       GrammarSegment::literal("</a>")});
  EXPECT_TRUE(matches(g, "<a>\"get\":{}</a>"));
  EXPECT_TRUE(matches(g, "<a>\"get_weather\":{\"x\":1}</a>"));
  EXPECT_TRUE(matches(g, "<a>\"put\":{ }</a>"));
  EXPECT_FALSE(matches(g, "<a>\"ge\":{}</a>"));
  EXPECT_FALSE(matches(g, "<a>\"got\":{}</a>"));
  EXPECT_FALSE(matches(g, "<a>\"get\":[]</a>"));
  EXPECT_FALSE(matches(g, "<a>\"get\":{}</a"));
  GrammarState s(g);
  ASSERT_TRUE(s.advance("<a>\"get"));
  EXPECT_TRUE(s.advance("_"));
  EXPECT_FALSE(s.advance("x"));
}

TEST(GrammarSegments, OneOfWithPrefixOptionsTakesTheLongestMatch) {
  const auto g = make({GrammarSegment::one_of({"ab", "abc"})});
  EXPECT_TRUE(matches(g, "ab"));
  EXPECT_TRUE(matches(g, "abc"));
  GrammarState s(g);
  ASSERT_TRUE(s.advance("ab"));
  EXPECT_TRUE(s.is_complete());
  EXPECT_TRUE(s.can_continue());
  ASSERT_TRUE(s.advance("c"));
  EXPECT_FALSE(s.can_continue());
}

TEST(GrammarSegments, CreateRejectsBadGrammars) {
  EXPECT_FALSE(Grammar::create({}).ok());
  EXPECT_FALSE(Grammar::create({GrammarSegment::literal("")}).ok());
  EXPECT_FALSE(Grammar::create({GrammarSegment::one_of({})}).ok());
  EXPECT_FALSE(Grammar::create({GrammarSegment::one_of({"a", "a"})}).ok());
  GrammarLimits deep;
  deep.max_depth = 65;
  EXPECT_FALSE(Grammar::create({GrammarSegment::json_value(false)}, deep).ok());
}

// Every allowed id's piece advances the state; every refused id's piece does not (or is eos /
// special); eos only when complete.
void check_mask(const TokenMask& mask, const GrammarState& s, std::span<const int32_t> eos,
                std::span<const int32_t> special) {
  std::vector<uint8_t> out;
  const int32_t n = mask.allowed(s, out);
  ASSERT_EQ(out.size(), static_cast<size_t>(mask.vocab_size()));
  int32_t count = 0;
  for (int32_t id = 0; id < mask.vocab_size(); ++id) {
    count += out[id];
    const bool is_eos = std::find(eos.begin(), eos.end(), id) != eos.end();
    const bool is_special = std::find(special.begin(), special.end(), id) != special.end();
    if (is_eos) {
      EXPECT_EQ(out[id] == 1, s.is_complete()) << id;
      continue;
    }
    if (is_special || mask.piece(id).empty()) {
      EXPECT_EQ(out[id], 0) << id;
      continue;
    }
    GrammarState t = s;
    EXPECT_EQ(out[id] == 1, t.advance(mask.piece(id))) << "id " << id << " '" << mask.piece(id)
                                                       << "'";
  }
  EXPECT_EQ(n, count);
}

TEST(GrammarMask, SyntheticVocabMatchesBruteForceAlongRandomWalks) {
  std::vector<std::string> pieces = {"<eos>", "<special>"};
  for (int b = 1; b < 256; ++b) pieces.push_back(std::string(1, static_cast<char>(b)));
  for (const char* p : {"{\"", "\":", "\", \"", "true", "tr", "null", "12", "-0.", "e+", " {",
                        "  ", "\n", "}}", "]}", "\\u00", "\xc3\xa9", "\xe4\xb8", "\xad",
                        "<tool_call>", "<tool", "_call>\n", "\"name\"", "get_weather", "\"get",
                        "{\"name\": \"", "\"arguments\": ", "}\n</tool_call>", "    "}) {
    pieces.push_back(p);
  }
  const std::vector<int32_t> eos = {0};
  const std::vector<int32_t> special = {1};
  std::vector<bool> special_flags(pieces.size(), false);
  special_flags[1] = true;
  const TokenMask mask(pieces, special_flags, eos);
  const auto g = make({GrammarSegment::literal("<tool_call>\n{\"name\": "),
                       GrammarSegment::one_of({"\"get\"", "\"get_weather\""}),
                       GrammarSegment::literal(", \"arguments\": "),
                       GrammarSegment::json_value(true), GrammarSegment::literal("}\n</tool_call>")});
  std::mt19937 rng(5);
  for (int walk = 0; walk < 20; ++walk) {
    GrammarState s(g);
    for (int step = 0; step < 60; ++step) {
      check_mask(mask, s, eos, special);
      std::vector<uint8_t> out;
      mask.allowed(s, out);
      std::vector<int32_t> ids;
      for (int32_t id = 0; id < mask.vocab_size(); ++id) {
        if (out[id]) ids.push_back(id);
      }
      ASSERT_FALSE(ids.empty()) << "a dead end";
      const int32_t id = ids[rng() % ids.size()];
      if (id == 0) {
        EXPECT_TRUE(s.is_complete());
        break;
      }
      ASSERT_TRUE(s.advance(mask.piece(id)));
    }
  }
}

TEST(GrammarMask, SmolLM2VocabMatchesBruteForceAndTiming) {
  const std::string path = std::string(TESSERA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "no " << path << " (run scripts/setup.sh)";
  auto gguf = model::GgufFile::open(path);
  ASSERT_TRUE(gguf.ok()) << gguf.status().message();
  auto tok = text::tokenizer_from_gguf(*gguf);
  ASSERT_TRUE(tok.ok()) << tok.status().message();
  const std::vector<int32_t> eos = {*tok->eos_id()};
  std::vector<int32_t> special;
  for (int32_t id = 0; id < tok->vocab_size(); ++id) {
    if (tok->is_special(id) && id != eos[0]) special.push_back(id);
  }
  const auto t0 = std::chrono::steady_clock::now();
  const TokenMask mask(*tok, eos);
  const auto t1 = std::chrono::steady_clock::now();
  const auto g = Grammar::json(true);
  const std::vector<std::string> prefixes = {"", "{", "{\"na", "{\"name\": ", "{\"a\": \"some te",
                                             "{\"a\": [1, 2", "{\"a\": {\"b\": null}}"};
  double total_us = 0;
  int steps = 0;
  for (const std::string& p : prefixes) {
    GrammarState s(g);
    ASSERT_TRUE(s.advance(p));
    check_mask(mask, s, eos, special);
    std::vector<uint8_t> out;
    const auto a = std::chrono::steady_clock::now();
    for (int r = 0; r < 5; ++r) mask.allowed(s, out);
    const auto b = std::chrono::steady_clock::now();
    const double us = std::chrono::duration<double, std::micro>(b - a).count() / 5;
    total_us += us;
    ++steps;
    int32_t n = 0;
    for (uint8_t v : out) n += v;
    std::printf("[grammar mask] vocab %d prefix '%s': %d allowed, %.1f us\n", mask.vocab_size(),
                p.c_str(), n, us);
  }
  std::printf("[grammar mask] build %.1f ms, mean %.1f us per step\n",
              std::chrono::duration<double, std::milli>(t1 - t0).count(), total_us / steps);
}

}  // namespace
}  // namespace tessera::sampling
