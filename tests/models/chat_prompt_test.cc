// `tessera generate --chat`: the prompt rendered from the default model's own GGUF chat
// template equals transformers' apply_chat_template output (tests/fixtures/chat_templates,
// made by scripts/make_chat_template_fixtures.py), and models without a template fail clearly.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <string>

#include "src/apps/app_model.h"

namespace tessera::apps {
namespace {

const std::string kSmolLm2 = std::string(TESSERA_MODELS_DIR) + "/SmolLM2-135M-Instruct.Q4_1.gguf";

TEST(ChatPrompt, DefaultModelTemplateMatchesTransformers) {
  if (!std::filesystem::exists(kSmolLm2)) GTEST_SKIP() << "no " << kSmolLm2 << " (run setup)";
  std::ifstream in(std::string(TESSERA_FIXTURES_DIR) + "/chat_templates/smollm2.json");
  const nlohmann::json fixture = nlohmann::json::parse(in);
  const nlohmann::json* single_turn = nullptr;
  for (const auto& c : fixture["cases"]) {
    if (c["messages"].size() == 1 && c["add_generation_prompt"].get<bool>() &&
        c["tools"].is_null() && c["extra_context"].empty()) {
      single_turn = &c;
      break;
    }
  }
  ASSERT_NE(single_turn, nullptr);
  AppModelOptions options;
  options.path = kSmolLm2;
  options.threads = 1;
  options.max_context = 64;
  Result<AppModel> app = open_app_model(options);
  ASSERT_TRUE(app.ok()) << app.status().message();
  const std::string user = (*single_turn)["messages"][0]["content"].get<std::string>();
  Result<std::string> prompt = chat_prompt(*app, user);
  ASSERT_TRUE(prompt.ok()) << prompt.status().message();
  EXPECT_EQ(*prompt, (*single_turn)["expected"].get<std::string>());
}

TEST(ChatPrompt, ModelWithoutTemplateIsAClearError) {
  const std::string dir = std::string(TESSERA_FIXTURES_DIR) + "/llama_tiny/base";
  AppModelOptions options;
  options.path = dir;
  options.threads = 1;
  options.max_context = 16;
  Result<AppModel> app = open_app_model(options);
  ASSERT_TRUE(app.ok()) << app.status().message();
  Result<std::string> prompt = chat_prompt(*app, "hi");
  ASSERT_FALSE(prompt.ok());
  EXPECT_NE(prompt.status().message().find("no chat template"), std::string::npos)
      << prompt.status().message();
}

}  // namespace
}  // namespace tessera::apps
