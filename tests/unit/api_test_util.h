// Shared fixtures for the api_* tests: a ServedModel over the SmolLM2 fixture tokenizer with a
// chat template read from the committed template sources, and small JSON helpers.
#pragma once

#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "tessera/api/openai.h"
#include "tessera/text/chat_template.h"
#include "tessera/text/tokenizer.h"

namespace tessera::api::testing {

using json = nlohmann::ordered_json;

inline std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// Templates from tests/fuzz/corpus/fuzz_jinja/<name>.jinja (real model templates).
inline std::string template_source(const std::string& name) {
  return read_text_file(std::string(TESSERA_FIXTURES_DIR) + "/../fuzz/corpus/fuzz_jinja/" + name +
                        ".jinja");
}

struct TestModel {
  const text::Tokenizer* tokenizer = nullptr;  // shared, loaded once
  std::unique_ptr<text::ChatTemplate> chat_template;
  ServedModel served;
};

// SmolLM2 tokenizer (fixture) + the named template; max_model_len 2048.
inline std::unique_ptr<TestModel> make_test_model(const std::string& template_name = "smollm2") {
  static const std::unique_ptr<text::Tokenizer> shared = [] {
    auto tok =
        text::tokenizer_from_json_file(std::string(TESSERA_FIXTURES_DIR) + "/tokenizers/smollm2");
    EXPECT_TRUE(tok.ok()) << tok.status().message();
    return tok.ok() ? std::make_unique<text::Tokenizer>(std::move(tok).value()) : nullptr;
  }();
  if (!shared) return nullptr;
  auto model = std::make_unique<TestModel>();
  model->tokenizer = shared.get();
  const std::string source = template_source(template_name);
  auto parsed = text::ChatTemplate::parse(source, "<|im_start|>", "<|im_end|>");
  EXPECT_TRUE(parsed.ok()) << parsed.status().message();
  if (!parsed.ok()) return nullptr;
  model->chat_template = std::make_unique<text::ChatTemplate>(std::move(parsed).value());
  model->served.name = "smol";
  model->served.tokenizer = model->tokenizer;
  model->served.chat_template = model->chat_template.get();
  model->served.max_model_len = 2048;
  model->served.eos_token_ids = {2};
  model->served.created = 1700000000;
  model->served.tool_call_format = detect_tool_call_format(source);
  return model;
}

// By value: callers pass temporaries.
inline PreparedRequest ok_request(const Prepared& prepared) {
  if (const auto* error = std::get_if<ApiError>(&prepared)) {
    ADD_FAILURE() << "unexpected error: " << error->to_json();
    PreparedRequest empty;
    empty.requests.resize(1);
    return empty;
  }
  return std::get<PreparedRequest>(prepared);
}

inline ApiError error_of(const Prepared& prepared) {
  if (const auto* error = std::get_if<ApiError>(&prepared)) return *error;
  ADD_FAILURE() << "expected an error, the request was accepted";
  return {};
}

}  // namespace tessera::api::testing
