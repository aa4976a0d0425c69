// ChatTemplate: parses a model's Jinja chat template once and renders conversations with the
// globals transformers' apply_chat_template passes (messages, tools, documents,
// add_generation_prompt, bos_token, eos_token, extra kwargs).
// Invariant: no exception leaves this file; every failure is a Status.
#include "tessera/text/chat_template.h"

#include <exception>

#include "src/text/jinja_ast.h"
#include "src/text/jinja_eval.h"

namespace tessera::text {
namespace {

// transformers drops None-valued keys of each message and mirrors reasoning into
// `reasoning_content` and `thinking`; templates see the result.
jinja::Value normalise_messages(const nlohmann::ordered_json& messages) {
  jinja::List out;
  for (const auto& m : messages) {
    if (!m.is_object()) {
      out.push_back(jinja::Value::from_json(m));
      continue;
    }
    nlohmann::ordered_json clean = nlohmann::ordered_json::object();
    for (auto it = m.begin(); it != m.end(); ++it) {
      if (!it.value().is_null()) clean[it.key()] = it.value();
    }
    for (const char* key : {"reasoning_content", "thinking", "reasoning"}) {
      auto it = clean.find(key);
      if (it == clean.end()) continue;
      nlohmann::ordered_json reasoning = *it;
      nlohmann::ordered_json aliased = nlohmann::ordered_json::object();
      aliased["thinking"] = reasoning;
      for (auto kv = clean.begin(); kv != clean.end(); ++kv) aliased[kv.key()] = kv.value();
      aliased["reasoning_content"] = reasoning;
      clean = std::move(aliased);
      break;
    }
    out.push_back(jinja::Value::from_json(clean));
  }
  return jinja::Value::list(std::move(out));
}

// Whether `j` nests deeper than `max_depth` (recursion stops there).
bool too_deep(const nlohmann::ordered_json& j, int max_depth) {
  if (!j.is_structured()) return false;
  if (max_depth <= 0) return true;
  for (const auto& e : j) {
    if (too_deep(e, max_depth - 1)) return true;
  }
  return false;
}

constexpr int kMaxInputDepth = 128;

}  // namespace

Result<ChatTemplate> ChatTemplate::parse(std::string_view source, std::string bos_token,
                                         std::string eos_token, ChatTemplateLimits limits) {
  try {
    jinja::ParseOptions options;
    options.max_depth = 4 * limits.max_depth;
    TESSERA_ASSIGN_OR_RETURN(auto program, jinja::parse_template(source, options));
    ChatTemplate t;
    t.program_ = std::move(program);
    t.bos_token_ = std::move(bos_token);
    t.eos_token_ = std::move(eos_token);
    t.limits_ = limits;
    return t;
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, std::string("chat template parse failed: ") + e.what());
  }
}

Result<std::string> ChatTemplate::render(const nlohmann::ordered_json& messages,
                                         const nlohmann::ordered_json& tools,
                                         bool add_generation_prompt,
                                         const nlohmann::ordered_json& extra_context) const {
  if (!messages.is_array()) return invalid_argument("chat template: messages must be an array");
  if (!tools.is_null() && !tools.is_array()) {
    return invalid_argument("chat template: tools must be an array or null");
  }
  if (!extra_context.is_null() && !extra_context.is_object()) {
    return invalid_argument("chat template: extra context must be an object or null");
  }
  if (too_deep(messages, kMaxInputDepth) || too_deep(tools, kMaxInputDepth) ||
      too_deep(extra_context, kMaxInputDepth)) {
    return invalid_argument("chat template: input JSON nests deeper than {} levels",
                            kMaxInputDepth);
  }
  try {
    jinja::Dict globals;
    globals.set("bos_token", jinja::Value::string(bos_token_));
    globals.set("eos_token", jinja::Value::string(eos_token_));
    if (!extra_context.is_null()) {
      for (auto it = extra_context.begin(); it != extra_context.end(); ++it) {
        globals.set(it.key(), jinja::Value::from_json(it.value()));
      }
    }
    globals.set("messages", normalise_messages(messages));
    globals.set("tools", jinja::Value::from_json(tools));
    globals.set("documents", jinja::Value::none());
    globals.set("add_generation_prompt", jinja::Value::boolean(add_generation_prompt));
    return jinja::render_template(*program_, globals, limits_);
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, std::string("chat template render failed: ") + e.what());
  }
}

Result<std::string> ChatTemplate::render(const nlohmann::json& messages,
                                         const nlohmann::json& tools, bool add_generation_prompt,
                                         const nlohmann::json& extra_context) const {
  auto convert = [](const nlohmann::json& j) {
    return j.is_null() ? nlohmann::ordered_json() : nlohmann::ordered_json::parse(j.dump());
  };
  try {
    return render(convert(messages), convert(tools), add_generation_prompt, convert(extra_context));
  } catch (const std::exception& e) {
    return Status(StatusCode::kInternal, std::string("chat template render failed: ") + e.what());
  }
}

}  // namespace tessera::text
