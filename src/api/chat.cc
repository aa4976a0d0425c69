// POST /v1/chat/completions: messages (and tools) are checked, normalised as transformers and
// vLLM hand them to a chat template, rendered with the model's template and tokenised
// (add_special_tokens = false by default) into one engine request.
// Invariant: the prompt is exactly the rendered template's encoding; nothing is added around it.
#include <limits>
#include <utility>

#include "src/api/api_internal.h"
#include "tessera/text/chat_template.h"
#include "tessera/text/tokenizer.h"

namespace tessera::api {

namespace {

constexpr size_t kMaxMessages = 4096;
constexpr size_t kMaxTools = 512;

// Content as a template expects it: a string (text parts joined with "\n"), or null.
std::optional<ApiError> normalise_content(ojson* content, size_t index) {
  const std::string param = "messages[" + std::to_string(index) + "].content";
  if (content->is_null() || content->is_string()) return std::nullopt;
  if (!content->is_array())
    return type_error(param, "a string or an array of content parts", *content);
  std::string joined;
  bool first = true;
  for (const auto& part : *content) {
    if (!part.is_object()) return type_error(param, "an array of content parts", part);
    auto type = part.find("type");
    if (type == part.end() || !type->is_string()) {
      return bad_request("each content part needs a string 'type'", param);
    }
    if (*type != "text") {
      return bad_request(
          "content parts of type '" + type->get<std::string>() + "' are not supported (text only)",
          param);
    }
    auto text = part.find("text");
    if (text == part.end() || !text->is_string()) {
      return bad_request("a text content part needs a string 'text'", param);
    }
    if (!first) joined += "\n";
    joined += text->get<std::string>();
    first = false;
  }
  *content = joined;
  return std::nullopt;
}

// Assistant tool calls: arguments become objects for templates that `tojson` them; DeepSeek's
// template concatenates them as strings, so they stay strings there.
std::optional<ApiError> normalise_tool_calls(ojson* calls, size_t index, ToolCallFormat format) {
  const std::string param = "messages[" + std::to_string(index) + "].tool_calls";
  if (calls->is_null()) return std::nullopt;
  if (!calls->is_array()) return type_error(param, "an array", *calls);
  for (auto& call : *calls) {
    if (!call.is_object()) return type_error(param, "an array of objects", call);
    // NOTE: inserting into an ordered_json object may reallocate it, so add "type" before
    // holding any iterator into `call`.
    if (call.find("type") == call.end()) call["type"] = "function";
    auto function = call.find("function");
    if (function == call.end() || !function->is_object()) {
      return bad_request("each tool call needs a 'function' object", param);
    }
    auto name = function->find("name");
    if (name == function->end() || !name->is_string()) {
      return bad_request("each tool call needs a string 'function.name'", param);
    }
    auto args = function->find("arguments");
    if (args == function->end() || args->is_null()) {
      (*function)["arguments"] =
          format == ToolCallFormat::kDeepSeekV3 ? ojson("{}") : ojson::object();
      continue;
    }
    if (format == ToolCallFormat::kDeepSeekV3) {
      if (!args->is_string()) *args = dump_json(*args);
      continue;
    }
    if (args->is_string()) {
      ojson parsed;
      if (parse_body(args->get_ref<const std::string&>(), &parsed)) {
        return bad_request("tool call arguments must be a JSON object encoded as a string", param);
      }
      *args = std::move(parsed);
    }
  }
  return std::nullopt;
}

std::optional<ApiError> read_messages(const ojson& body, ToolCallFormat format, ojson* messages) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) return bad_request("'messages' is required", "messages");
  if (!it->is_array()) return type_error("messages", "an array", *it);
  if (it->empty()) return bad_request("'messages' must not be empty", "messages");
  if (it->size() > kMaxMessages) return bad_request("too many messages", "messages");
  *messages = *it;
  for (size_t i = 0; i < messages->size(); ++i) {
    ojson& message = (*messages)[i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!message.is_object()) return type_error(param, "an object", message);
    auto role = message.find("role");
    if (role == message.end() || !role->is_string()) {
      return bad_request("each message needs a string 'role'", param + ".role");
    }
    if (*role == "developer") *role = "system";  // OpenAI's newer name for the system role
    // NOTE: null content becomes "": the renderer drops null keys (as transformers does), and
    // templates such as DeepSeek-V3's then fail on the missing key; "" renders the same text.
    auto content = message.find("content");
    if (content == message.end() || content->is_null()) {
      message["content"] = "";
    } else if (auto e = normalise_content(&*content, i)) {
      return e;
    }
    auto calls = message.find("tool_calls");
    if (calls != message.end()) {
      if (auto e = normalise_tool_calls(&*calls, i, format)) return e;
    }
  }
  return std::nullopt;
}

std::optional<ApiError> read_tools(const ojson& body, ojson* tools) {
  auto it = body.find("tools");
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (!it->is_array()) return type_error("tools", "an array", *it);
  if (it->size() > kMaxTools) return bad_request("too many tools", "tools");
  for (const auto& tool : *it) {
    if (!tool.is_object()) return type_error("tools", "an array of objects", tool);
    auto type = tool.find("type");
    if (type != tool.end() && (!type->is_string() || *type != "function")) {
      return bad_request("only tools of type 'function' are supported", "tools");
    }
    auto function = tool.find("function");
    if (function == tool.end() || !function->is_object()) {
      return bad_request("each tool needs a 'function' object", "tools");
    }
    auto name = function->find("name");
    if (name == function->end() || !name->is_string() ||
        name->get_ref<const std::string&>().empty()) {
      return bad_request("each tool needs a non-empty string 'function.name'", "tools");
    }
    auto params = function->find("parameters");
    if (params != function->end() && !params->is_null() && !params->is_object()) {
      return type_error("tools", "function.parameters as an object", *params);
    }
  }
  if (!it->empty()) *tools = *it;
  return std::nullopt;
}

std::optional<ApiError> read_tool_choice(const ojson& body, const ojson& tools,
                                         ResponseShape* shape) {
  shape->tool_choice = tools.is_null() ? ToolChoice::kNone : ToolChoice::kAuto;
  auto it = body.find("tool_choice");
  if (it == body.end() || it->is_null()) return std::nullopt;
  if (it->is_string()) {
    const std::string& choice = it->get_ref<const std::string&>();
    if (choice == "none") {
      shape->tool_choice = ToolChoice::kNone;
      return std::nullopt;
    }
    if (choice == "auto") {
      shape->tool_choice = ToolChoice::kAuto;
    } else if (choice == "required") {
      shape->tool_choice = ToolChoice::kRequired;
    } else {
      return bad_request("'tool_choice' must be none, auto, required or a function object",
                         "tool_choice");
    }
  } else if (it->is_object()) {
    auto function = it->find("function");
    if (function == it->end() || !function->is_object() || !function->contains("name") ||
        !(*function)["name"].is_string()) {
      return bad_request("'tool_choice' object needs function.name", "tool_choice");
    }
    shape->tool_choice = ToolChoice::kNamed;
    shape->named_tool = (*function)["name"].get<std::string>();
    bool known = false;
    if (tools.is_array()) {
      for (const auto& tool : tools) known |= tool["function"]["name"] == shape->named_tool;
    }
    if (!known) {
      return bad_request("'tool_choice' names '" + shape->named_tool + "', which is not in 'tools'",
                         "tool_choice");
    }
  } else {
    return type_error("tool_choice", "a string or an object", *it);
  }
  if (tools.is_null()) {
    return bad_request("'tool_choice' requires 'tools'", "tool_choice");
  }
  return std::nullopt;
}

Prepared prepare_chat_impl(std::string_view body_text, const ServedModel& model) {
  if (model.tokenizer == nullptr || model.chat_template == nullptr) {
    return bad_request(
        "this model has no chat template, so /v1/chat/completions is not available; use "
        "/v1/completions");
  }
  RequestStart start;
  if (auto e = start_request(body_text, model, Endpoint::kChatCompletions, &start)) return *e;
  const ojson& body = start.body;
  PreparedRequest& prepared = start.prepared;
  engine::GenerateRequest& request = start.request;
  std::shared_ptr<ResponseShape>& shape = start.shape;

  bool logprobs = false;
  if (auto e = read_bool(body, "logprobs", &logprobs)) return *e;
  std::optional<int64_t> top;
  if (auto e = read_int(body, "top_logprobs", 0, 20, &top)) return *e;
  if (top && !logprobs) {
    return bad_request("'top_logprobs' requires 'logprobs': true", "top_logprobs");
  }
  if (logprobs) {
    request.sampling.logprobs = true;
    request.sampling.top_logprobs = top ? static_cast<int32_t>(*top) : 0;
    shape->logprobs = LogprobsForm::kChat;
  }

  ojson tools = nullptr;
  if (auto e = read_tools(body, &tools)) return *e;
  if (auto e = read_tool_choice(body, tools, shape.get())) return *e;
  if (shape->tool_choice != ToolChoice::kNone) {
    shape->tool_format = model.tool_call_format;
    if (shape->tool_choice == ToolChoice::kRequired || shape->tool_choice == ToolChoice::kNamed) {
      // Constrained: exactly one call, in the family's syntax (Hermes for templates without one).
      if (shape->tool_format == ToolCallFormat::kNone) shape->tool_format = ToolCallFormat::kHermes;
      std::vector<std::string> names;
      if (shape->tool_choice == ToolChoice::kNamed) {
        names.push_back(shape->named_tool);
      } else {
        for (const auto& tool : tools) names.push_back(tool["function"]["name"].get<std::string>());
      }
      request.grammar = tool_call_grammar(shape->tool_format, names);
      if (request.grammar == nullptr) {
        return bad_request("tool names must be non-empty to force a tool call", "tools");
      }
    }
    // Mistral's and Llama's markers are special tokens: keep them in the text to parse them.
    if (model.tool_call_format == ToolCallFormat::kMistral ||
        model.tool_call_format == ToolCallFormat::kLlama3Json) {
      request.skip_special_tokens = false;
    }
  } else {
    tools = nullptr;  // tool_choice none: the template does not see them
  }

  ojson messages;
  if (auto e = read_messages(body, model.tool_call_format, &messages)) return *e;
  bool add_generation_prompt = true;
  if (auto e = read_bool(body, "add_generation_prompt", &add_generation_prompt)) return *e;
  bool add_special_tokens = false;
  if (auto e = read_bool(body, "add_special_tokens", &add_special_tokens)) return *e;
  ojson extra = ojson::object();
  auto kwargs = body.find("chat_template_kwargs");
  if (kwargs != body.end() && !kwargs->is_null()) {
    if (!kwargs->is_object()) return type_error("chat_template_kwargs", "an object", *kwargs);
    extra = *kwargs;
  }

  auto rendered = model.chat_template->render(messages, tools, add_generation_prompt, extra);
  if (!rendered.ok()) {
    return bad_request(
        "the chat template could not render these messages: " + rendered.status().message(),
        "messages");
  }
  request.prompt_tokens = model.tokenizer->encode(*rendered, add_special_tokens);
  if (request.prompt_tokens.empty()) {
    return bad_request("the rendered chat prompt is empty", "messages");
  }
  if (auto e = check_context(request, model, "messages")) return *e;
  shape->prompt_token_counts.push_back(static_cast<int32_t>(request.prompt_tokens.size()));
  prepared.requests.push_back(std::move(request));
  prepared.shape = std::move(shape);
  return std::move(prepared);
}

}  // namespace

Prepared prepare_chat_completion(std::string_view body, const ServedModel& model) {
  try {
    return prepare_chat_impl(body, model);
  } catch (const std::exception& e) {
    // NOTE: a last guard; the readers check every type before access.
    return bad_request(std::string("invalid request: ") + e.what());
  }
}

}  // namespace tessera::api
