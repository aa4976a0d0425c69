// The library API in brief: open a model, complete a batch of prompts, chat, and stream.
//   simple_generate models/SmolLM2-135M-Instruct.Q4_1.gguf
#include <cstdio>
#include <string>

#include "tessera/engine/llm.h"

int main(int argc, char** argv) {
  const std::string path = argc > 1 ? argv[1] : "models/SmolLM2-135M-Instruct.Q4_1.gguf";
  tessera::LlmOptions llm_options;
  llm_options.threads = 2;
  auto llm = tessera::LLM::from_pretrained(path, llm_options);
  if (!llm.ok()) {
    std::fprintf(stderr, "error: %s\n", llm.status().message().c_str());
    return 1;
  }
  tessera::GenerateOptions options;
  options.sampling.temperature = 0.0f;  // greedy
  options.max_tokens = 24;

  // Several prompts run together in one continuously batched engine.
  auto results = (*llm)->generate({"The capital of France is", "def fibonacci(n):"}, options);
  if (!results.ok()) return 1;
  for (const tessera::GenerateResult& r : *results) {
    std::printf("[%s] %s\n", tessera::engine::to_string(r.completions[0].finish_reason),
                r.completions[0].text.c_str());
  }

  // A conversation, rendered with the model's own chat template.
  auto answer = (*llm)->chat({{"user", "Name three colours."}}, options);
  if (answer.ok()) std::printf("chat: %s\n", answer->completions[0].text.c_str());

  // Streaming: deltas arrive (on the engine thread) as tokens are sampled.
  options.stop = {"\n\n"};
  auto streamed = (*llm)->generate_stream(
      "Once upon a time", options, [](const tessera::engine::CompletionDelta& delta) {
        std::fwrite(delta.text.data(), 1, delta.text.size(), stdout);
        std::fflush(stdout);
      });
  std::printf("\n");
  return streamed.ok() ? 0 : 1;
}
