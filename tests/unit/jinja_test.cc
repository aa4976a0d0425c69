// The Jinja subset feature by feature: small templates whose expected output comes from
// transformers (fixtures/chat_templates/features.json), then the sandbox's own contract:
// syntax errors with line and column, undefined-variable errors, and the resource caps.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "tessera/text/chat_template.h"

namespace tessera::text {
namespace {

using nlohmann::ordered_json;

Result<std::string> render(const std::string& source, ChatTemplateLimits limits = {}) {
  TESSERA_ASSIGN_OR_RETURN(ChatTemplate tpl, ChatTemplate::parse(source, "<s>", "</s>", limits));
  ordered_json messages = ordered_json::parse(R"([{"role":"user","content":"hi"}])");
  return tpl.render(messages, nullptr, false, nullptr);
}

TEST(Jinja, FeaturesMatchTransformers) {
  std::ifstream f(std::string(TESSERA_FIXTURES_DIR) + "/chat_templates/features.json");
  ASSERT_TRUE(f.good()) << "run scripts/make_chat_template_fixtures.py";
  std::stringstream ss;
  ss << f.rdbuf();
  ordered_json doc = ordered_json::parse(ss.str());
  int checked = 0;
  for (const auto& c : doc["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>());
    auto tpl =
        ChatTemplate::parse(c["source"].get<std::string>(), doc["bos_token"].get<std::string>(),
                            doc["eos_token"].get<std::string>());
    ASSERT_TRUE(tpl.ok()) << tpl.status().message();
    auto out = tpl->render(c["messages"], c["tools"], c["add_generation_prompt"].get<bool>(),
                           c["extra_context"]);
    if (c.contains("error")) {
      EXPECT_FALSE(out.ok());
    } else {
      ASSERT_TRUE(out.ok()) << out.status().message();
      EXPECT_EQ(*out, c["expected"].get<std::string>());
    }
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

TEST(Jinja, SyntaxErrorsCarryLineAndColumn) {
  auto t = ChatTemplate::parse("line one\n{% if x %}\n  {{ 1 + }}\n{% endif %}");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(t.status().message().find("line 3"), std::string::npos) << t.status().message();

  auto unclosed = ChatTemplate::parse("{% for m in messages %}x");
  ASSERT_FALSE(unclosed.ok());
  EXPECT_NE(unclosed.status().message().find("endfor"), std::string::npos)
      << unclosed.status().message();

  for (const char* bad : {"{{ 'abc }}", "{{ x", "{# never closed", "{% endif %}", "{{ (1 }}",
                          "{% set %}", "{{ a[1:2:3:4] }}", "{% foo %}", "{{ 1 2 }}", "{{ ` }}"}) {
    EXPECT_FALSE(ChatTemplate::parse(bad).ok()) << bad;
  }
}

TEST(Jinja, NoFileAccessTags) {
  for (const char* bad : {"{% include 'x' %}", "{% import 'x' as y %}", "{% extends 'x' %}",
                          "{% from 'x' import y %}"}) {
    auto t = ChatTemplate::parse(bad);
    ASSERT_FALSE(t.ok()) << bad;
    EXPECT_NE(t.status().message().find("not allowed"), std::string::npos) << t.status().message();
  }
}

TEST(Jinja, UndefinedInOperationIsAnError) {
  auto out = render("a\n{{ nope + 1 }}");
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("'nope' is undefined"), std::string::npos)
      << out.status().message();
  EXPECT_NE(out.status().message().find("line 2"), std::string::npos) << out.status().message();
  EXPECT_FALSE(render("{{ nope.attr }}").ok());
  EXPECT_TRUE(render("{{ messages[0].missing ~ 'x' }}").ok());  // ~ stringifies
  EXPECT_FALSE(render("{{ messages[0].missing + 'x' }}").ok());
  // Printing or testing an undefined value is fine, as in Jinja.
  EXPECT_EQ(render("[{{ nope }}]{{ nope is defined }}").value(), "[]False");
}

TEST(Jinja, RaiseExceptionBecomesStatus) {
  auto out = render("{{ raise_exception('bad roles: ' ~ messages | length) }}");
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("bad roles: 1"), std::string::npos)
      << out.status().message();
}

TEST(Jinja, SandboxRejectsMutationAndUnderscoreNamespaceAttrs) {
  EXPECT_FALSE(render("{{ messages.append(1) }}").ok());
  EXPECT_FALSE(render("{% set d = {} %}{{ d.update({'a': 1}) }}").ok());
  EXPECT_FALSE(render("{% set ns = namespace(_x=1) %}").ok());
  EXPECT_FALSE(render("{% set ns = namespace() %}{% set ns._x = 1 %}").ok());
  EXPECT_FALSE(render("{% set s = 'x' %}{% set s.attr = 1 %}").ok());
}

TEST(Jinja, LoopIterationCap) {
  ChatTemplateLimits limits;
  limits.max_loop_iterations = 1000;
  auto out =
      render("{% for i in range(100) %}{% for j in range(100) %}{% endfor %}{% endfor %}", limits);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(out.status().message().find("loop iterations"), std::string::npos);
  EXPECT_FALSE(render("{{ range(100000000) | length }}", limits).ok());
}

TEST(Jinja, OutputSizeCap) {
  ChatTemplateLimits limits;
  limits.max_output_bytes = 1 << 12;
  auto out = render("{% for i in range(1000) %}0123456789{% endfor %}", limits);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kResourceExhausted);
  EXPECT_FALSE(render("{{ 'x' * 100000 }}", limits).ok());
  EXPECT_FALSE(render("{% set ns = namespace(s='ab') %}{% for i in range(20) %}"
                      "{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
                      limits)
                   .ok());
}

TEST(Jinja, RecursionDepthCap) {
  auto out = render("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(out.status().message().find("nested deeper"), std::string::npos);
  std::string deep(5000, '(');
  EXPECT_FALSE(ChatTemplate::parse("{{ " + deep + "1" + std::string(5000, ')') + " }}").ok());
  std::string nested_ifs;
  for (int i = 0; i < 2000; ++i) nested_ifs += "{% if true %}";
  EXPECT_FALSE(ChatTemplate::parse(nested_ifs).ok());
}

TEST(Jinja, StepCapStopsLongRenders) {
  ChatTemplateLimits limits;
  limits.max_steps = 10000;
  auto out = render("{% for i in range(100000) %}{{ i }}{% endfor %}", limits);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), StatusCode::kResourceExhausted);
}

TEST(Jinja, HostileArithmeticAndDataShapesFailCleanly) {
  EXPECT_EQ(render("{{ 1 ** 1000000000000 }}|{{ (-1) ** 3 }}|{{ 2 ** 62 }}").value(),
            "1|-1|4611686018427387904");
  EXPECT_FALSE(render("{{ 2 ** 64 }}").ok());
  EXPECT_FALSE(render("{{ 9223372036854775807 + 1 }}").ok());
  EXPECT_FALSE(render("{{ 1 / 0 }}").ok());
  EXPECT_FALSE(render("{{ 1 // 0 }}").ok());
  EXPECT_EQ(render("{{ range(0, 9223372036854775807, 4611686018427387904) | list }}").value(),
            "[0, 4611686018427387904]");
  EXPECT_EQ(render("{{ [1, 2, 3][::9223372036854775807] }}").value(), "[1]");
  // Nesting built in a loop is capped; a namespace holding itself neither recurses nor leaks.
  auto deep = render(
      "{% set ns = namespace(x=[]) %}{% for i in range(1000) %}"
      "{% set ns.x = [ns.x] %}{% endfor %}{{ ns.x }}");
  ASSERT_FALSE(deep.ok());
  EXPECT_EQ(deep.status().code(), StatusCode::kResourceExhausted);
  EXPECT_EQ(render("{% set ns = namespace() %}{% set ns.me = [ns] %}{{ ns.me }}").value(),
            "[<Namespace>]");
}

TEST(Jinja, DeepInputJsonIsRejected) {
  auto tpl = ChatTemplate::parse("{{ messages }}");
  ASSERT_TRUE(tpl.ok());
  std::string deep =
      "[{\"role\":\"user\",\"content\":" + std::string(1000, '[') + std::string(1000, ']') + "}]";
  EXPECT_FALSE(tpl->render(ordered_json::parse(deep), nullptr, false, nullptr).ok());
}

TEST(Jinja, MacroRecursionWithBaseCaseWorks) {
  auto out = render(
      "{% macro count(n) %}{% if n > 0 %}{{ n }}{{ count(n - 1) }}{% endif %}{% endmacro %}"
      "{{ count(5) }}");
  ASSERT_TRUE(out.ok()) << out.status().message();
  EXPECT_EQ(*out, "54321");
}

TEST(Jinja, TrailingNewlineDroppedAndCrlfNormalised) {
  EXPECT_EQ(render("a\r\nb\n").value(), "a\nb");
  EXPECT_EQ(render("a\n\n").value(), "a\n");
}

}  // namespace
}  // namespace tessera::text
