// Fuzzes the OpenAI protocol layer on hostile request bodies: every body goes through
// prepare_completion, prepare_chat_completion, tokenize and detokenize, and the body's bytes go
// through the tool-call parser of every format and, when a request was accepted, through the
// response assembler (streaming and not) as model output.
// Invariants: no crash or exception, every rejection is a 4xx, and every response is valid JSON.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>

#include "src/api/tool_parser.h"
#include "tessera/api/openai.h"
#include "tessera/text/chat_template.h"
#include "tessera/text/tokenizer.h"

namespace {

using tessera::api::ApiError;

struct Fixture {
  std::unique_ptr<tessera::text::Tokenizer> tokenizer;
  std::unique_ptr<tessera::text::ChatTemplate> chat_template;
  tessera::api::ServedModel served;
};

[[noreturn]] void die(const std::string& what) {
  std::fprintf(stderr, "%s\n", what.c_str());
  std::abort();
}

const Fixture& fixture() {
  static const Fixture* f = [] {
    auto* out = new Fixture;
    const std::string dir = TESSERA_FIXTURES_DIR;
    auto tok = tessera::text::tokenizer_from_json_file(dir + "/tokenizers/qwen2_style");
    if (!tok.ok()) die("fixture tokenizer: " + tok.status().message());
    out->tokenizer = std::make_unique<tessera::text::Tokenizer>(std::move(tok).value());
    std::ifstream in(dir + "/../fuzz/corpus/fuzz_jinja/qwen2.5.jinja");
    const std::string source{std::istreambuf_iterator<char>(in), {}};
    auto tmpl = tessera::text::ChatTemplate::parse(source, "", "<|im_end|>");
    if (!tmpl.ok()) die("fixture template: " + tmpl.status().message());
    out->chat_template = std::make_unique<tessera::text::ChatTemplate>(std::move(tmpl).value());
    out->served.name = "fuzz";
    out->served.tokenizer = out->tokenizer.get();
    out->served.chat_template = out->chat_template.get();
    out->served.max_model_len = 4096;
    out->served.tool_call_format = tessera::api::detect_tool_call_format(source);
    return out;
  }();
  return *f;
}

void check_error(const ApiError& e) {
  if (e.http_status < 400 || e.http_status >= 500) die("non-4xx for client input: " + e.message);
  if (nlohmann::json::parse(e.to_json(), nullptr, false).is_discarded()) die("bad error JSON");
}

void check_json(const std::string& text) {
  if (nlohmann::json::parse(text, nullptr, false).is_discarded()) die("invalid JSON: " + text);
}

void assemble(const tessera::api::PreparedRequest& prepared, std::string_view text) {
  for (bool stream : {false, true}) {
    tessera::api::PreparedRequest p = prepared;
    p.stream = stream;
    tessera::api::ResponseAssembler assembler(p, "id", 0);
    for (size_t r = 0; r < p.requests.size() && r < 4; ++r) {
      for (int32_t c = 0; c < p.requests[r].n && c < 4; ++c) {
        tessera::engine::RequestOutput out;
        tessera::engine::CompletionDelta delta;
        delta.index = c;
        delta.text = std::string(text.substr(0, text.size() / 2));
        out.deltas.push_back(delta);
        for (const std::string& e : assembler.on_output(r, out)) check_json(e.substr(6));
        out.deltas[0].text = std::string(text.substr(text.size() / 2));
        out.deltas[0].finish_reason = tessera::engine::FinishReason::kStop;
        for (const std::string& e : assembler.on_output(r, out)) check_json(e.substr(6));
      }
    }
    const std::string tail = assembler.finish();
    if (!stream) check_json(tail);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view body(reinterpret_cast<const char*>(data), size);
  const Fixture& f = fixture();
  for (auto prepare : {&tessera::api::prepare_completion, &tessera::api::prepare_chat_completion}) {
    const tessera::api::Prepared prepared = prepare(body, f.served);
    if (const auto* e = std::get_if<ApiError>(&prepared)) {
      check_error(*e);
    } else {
      const auto& p = std::get<tessera::api::PreparedRequest>(prepared);
      if (p.requests.empty()) die("accepted with no engine request");
      assemble(p, body);
    }
  }
  for (auto route : {&tessera::api::tokenize, &tessera::api::detokenize}) {
    const auto result = route(body, f.served);
    if (const auto* e = std::get_if<ApiError>(&result)) {
      check_error(*e);
    } else {
      check_json(std::get<std::string>(result));
    }
  }
  using tessera::api::ToolCallFormat;
  for (ToolCallFormat format : {ToolCallFormat::kHermes, ToolCallFormat::kLlama3Json,
                                ToolCallFormat::kDeepSeekV3, ToolCallFormat::kMistral}) {
    tessera::api::ToolCallParser parser(format);
    size_t released = 0;
    for (size_t i = 0; i < body.size(); i += 7) {
      for (const auto& e : parser.feed(body.substr(i, 7))) released += e.content.size();
    }
    for (const auto& e : parser.finish()) released += e.content.size();
    if (released > body.size()) die("the tool parser released more content than it was given");
  }
  return 0;
}
