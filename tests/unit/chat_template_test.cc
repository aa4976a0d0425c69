// Chat templates against transformers: every fixture case (written by
// scripts/make_chat_template_fixtures.py from apply_chat_template(tokenize=False)) must render to
// the exact expected string, or fail where transformers raised.
#include "tessera/text/chat_template.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace tessera::text {
namespace {

using nlohmann::ordered_json;

ordered_json load_fixture(const std::string& name) {
  std::string path = std::string(TESSERA_FIXTURES_DIR) + "/chat_templates/" + name + ".json";
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << "missing fixture " << path
                        << " (run scripts/make_chat_template_fixtures.py)";
  std::stringstream ss;
  ss << f.rdbuf();
  return ordered_json::parse(ss.str());
}

class ChatTemplateFixture : public ::testing::TestWithParam<std::string> {};

TEST_P(ChatTemplateFixture, MatchesTransformers) {
  ordered_json doc = load_fixture(GetParam());
  auto tpl =
      ChatTemplate::parse(doc["source"].get<std::string>(), doc["bos_token"].get<std::string>(),
                          doc["eos_token"].get<std::string>());
  ASSERT_TRUE(tpl.ok()) << tpl.status().message();
  int checked = 0;
  for (const auto& c : doc["cases"]) {
    SCOPED_TRACE(GetParam() + ": " + c["name"].get<std::string>());
    auto out = tpl->render(c["messages"], c["tools"], c["add_generation_prompt"].get<bool>(),
                           c["extra_context"]);
    if (c.contains("error")) {
      EXPECT_FALSE(out.ok()) << "transformers raised `" << c["error"].get<std::string>()
                             << "` but we rendered:\n"
                             << out.value();
    } else {
      ASSERT_TRUE(out.ok()) << out.status().message();
      EXPECT_EQ(*out, c["expected"].get<std::string>());
    }
    ++checked;
  }
  EXPECT_GE(checked, 10);
}

INSTANTIATE_TEST_SUITE_P(Models, ChatTemplateFixture,
                         ::testing::Values("smollm2", "llama3.1", "deepseek-v3", "qwen2.5",
                                           "mistral-v0.3", "qwen3"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n) {
                             if (ch == '.' || ch == '-') ch = '_';
                           }
                           return n;
                         });

TEST(ChatTemplate, RaiseExceptionMessageReachesStatus) {
  ordered_json doc = load_fixture("mistral-v0.3");
  auto tpl = ChatTemplate::parse(doc["source"].get<std::string>(), "<s>", "</s>");
  ASSERT_TRUE(tpl.ok());
  ordered_json messages =
      ordered_json::parse(R"([{"role":"user","content":"a"},{"role":"user","content":"b"}])");
  auto out = tpl->render(messages, nullptr, false, nullptr);
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("conversation roles must alternate"), std::string::npos)
      << out.status().message();
}

TEST(ChatTemplate, SmolLM2FromGgufDefaultSystemPrompt) {
  ordered_json doc = load_fixture("smollm2");
  auto tpl = ChatTemplate::parse(doc["source"].get<std::string>(), "<|im_start|>", "<|im_end|>");
  ASSERT_TRUE(tpl.ok());
  nlohmann::json messages = nlohmann::json::parse(R"([{"role":"user","content":"Hi"}])");
  auto out = tpl->render(messages, nlohmann::json(), true, nlohmann::json());
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out,
            "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
            "Face<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, NullMessageFieldsAreDropped) {
  // transformers removes None-valued keys, so `content is defined` is false for content: null.
  auto tpl = ChatTemplate::parse(
      "{% for m in messages %}{{ m.content is defined }}|{{ m.tool_calls is defined }};"
      "{% endfor %}");
  ASSERT_TRUE(tpl.ok());
  ordered_json messages = ordered_json::parse(
      R"([{"role":"assistant","content":null,"tool_calls":[]},{"role":"user","content":"x"}])");
  auto out = tpl->render(messages, nullptr, false, nullptr);
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, "False|True;True|False;");
}

TEST(ChatTemplate, RejectsNonArrayMessages) {
  auto tpl = ChatTemplate::parse("x");
  ASSERT_TRUE(tpl.ok());
  EXPECT_FALSE(tpl->render(ordered_json::object(), nullptr, false, nullptr).ok());
  EXPECT_FALSE(tpl->render(ordered_json::array(), ordered_json("no"), false, nullptr).ok());
}

}  // namespace
}  // namespace tessera::text
