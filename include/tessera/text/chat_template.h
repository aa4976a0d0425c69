// Chat templates: the model's own Jinja template (tokenizer_config.json `chat_template` or GGUF
// `tokenizer.chat_template`) rendered by a sandboxed Jinja-subset interpreter of our own.
// Invariant: rendering reads only the data given (no files, no host attributes), is bounded in
// loop iterations, recursion depth and output size, and reports every failure as a Status; for
// the supported subset the output equals transformers' `apply_chat_template(tokenize=False)`.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

#include "tessera/core/status.h"

namespace tessera::text {

namespace jinja {
struct Template;  // parsed program (private, src/text/jinja_ast.h)
}  // namespace jinja

// Sandbox limits. Exceeding one fails the render with kResourceExhausted and says which.
struct ChatTemplateLimits {
  int64_t max_output_bytes = 4 << 20;     // rendered text, and any one string value
  int64_t max_loop_iterations = 1 << 20;  // all for-loop iterations of one render together
  int64_t max_steps = 20'000'000;         // evaluated nodes of one render (a hang guard)
  int max_depth = 64;  // macro call nesting (the parser allows 4x this in syntax nesting)
};

class ChatTemplate {
 public:
  // Parses `source`; syntax errors carry line and column. bos/eos become the `bos_token` and
  // `eos_token` globals (as transformers passes the tokenizer's special tokens).
  static Result<ChatTemplate> parse(std::string_view source, std::string bos_token = "",
                                    std::string eos_token = "", ChatTemplateLimits limits = {});

  // Renders the conversation. `messages` is a JSON array of message objects; `tools` an array of
  // tool schemas or null; `extra_context` an object (or null) of further globals, which override
  // the defaults (e.g. `enable_thinking`, or a `bos_token` of its own). As transformers does,
  // top-level keys of a message whose value is null are dropped before rendering.
  // NOTE: ordered_json keeps object keys in the order given, which `tojson` reproduces; the
  // nlohmann::json overload sorts keys (that is what nlohmann::json stores), so prefer the
  // ordered form where tool schemas are dumped with `tojson`.
  Result<std::string> render(const nlohmann::ordered_json& messages,
                             const nlohmann::ordered_json& tools, bool add_generation_prompt,
                             const nlohmann::ordered_json& extra_context) const;
  Result<std::string> render(const nlohmann::json& messages, const nlohmann::json& tools,
                             bool add_generation_prompt, const nlohmann::json& extra_context) const;

  const std::string& bos_token() const { return bos_token_; }
  const std::string& eos_token() const { return eos_token_; }

 private:
  ChatTemplate() = default;

  std::shared_ptr<const jinja::Template> program_;
  std::string bos_token_;
  std::string eos_token_;
  ChatTemplateLimits limits_;
};

}  // namespace tessera::text
