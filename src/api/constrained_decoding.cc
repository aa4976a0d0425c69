// Grammars for constrained decoding on the API side: one tool call in the model family's
// syntax (tool_choice "required" or a named function). The tool parser reads exactly what these
// grammars allow, so a constrained output always parses into one call.
// Invariant: names are matched as whole options (JSON-quoted where the syntax quotes them).
#include "src/api/api_internal.h"

#include <algorithm>

namespace tessera::api {

std::shared_ptr<const sampling::Grammar> tool_call_grammar(ToolCallFormat format,
                                                           const std::vector<std::string>& names) {
  using sampling::GrammarSegment;
  std::vector<std::string> quoted;
  for (const std::string& name : names) quoted.push_back(dump_json(ojson(name)));
  std::sort(quoted.begin(), quoted.end());
  quoted.erase(std::unique(quoted.begin(), quoted.end()), quoted.end());
  std::vector<GrammarSegment> segments;
  switch (format) {
    case ToolCallFormat::kLlama3Json:
      segments = {GrammarSegment::literal("{\"name\": "), GrammarSegment::one_of(quoted),
                  GrammarSegment::literal(", \"parameters\": "), GrammarSegment::json_value(true),
                  GrammarSegment::literal("}")};
      break;
    case ToolCallFormat::kMistral:
      segments = {GrammarSegment::literal("[TOOL_CALLS][{\"name\": "),
                  GrammarSegment::one_of(quoted),
                  GrammarSegment::literal(", \"arguments\": "), GrammarSegment::json_value(true),
                  GrammarSegment::literal("}]")};
      break;
    case ToolCallFormat::kDeepSeekV3: {
      std::vector<std::string> plain(names.begin(), names.end());
      std::sort(plain.begin(), plain.end());
      plain.erase(std::unique(plain.begin(), plain.end()), plain.end());
      segments = {GrammarSegment::literal("<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function"
                                          "<｜tool▁sep｜>"),
                  GrammarSegment::one_of(plain), GrammarSegment::literal("\n```json\n"),
                  GrammarSegment::json_value(true),
                  GrammarSegment::literal("\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>")};
      break;
    }
    case ToolCallFormat::kHermes:
    case ToolCallFormat::kNone:
      segments = {GrammarSegment::literal("<tool_call>\n{\"name\": "),
                  GrammarSegment::one_of(quoted),
                  GrammarSegment::literal(", \"arguments\": "), GrammarSegment::json_value(true),
                  GrammarSegment::literal("}\n</tool_call>")};
      break;
  }
  auto grammar = sampling::Grammar::create(std::move(segments));
  if (!grammar.ok()) return nullptr;  // an empty name (DeepSeek's unquoted names)
  return *grammar;
}

}  // namespace tessera::api
