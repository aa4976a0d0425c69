// `tessera` subcommand dispatch (CLI11): parses options into the plain structs of each
// subcommand and runs it. Invariant: parsing errors exit through CLI11 with its message.
#include "src/apps/cli.h"

#include <CLI/CLI.hpp>

#include "src/apps/generate.h"
#include "src/apps/perplexity.h"

namespace tessera::apps {
namespace {

void add_model_options(CLI::App* cmd, AppModelOptions* m) {
  cmd->add_option("--model,-m", m->path, "a .gguf file or an HF model directory")->required();
  cmd->add_option("--threads,-t", m->threads, "CPU threads (0: all cores)");
  cmd->add_option("--backend", m->backend, "cpu | reference")->capture_default_str();
}

}  // namespace

int run_cli(int argc, char** argv) {
  CLI::App app{"Tessera: LLM inference server"};
  app.require_subcommand(1);

  GenerateOptions gen;
  // NOTE: the CLI samples like llama.cpp's by default (a tiny model at temperature 1 with no
  // truncation rambles); the library's SamplingParams keep OpenAI's defaults for the API.
  gen.sampling.temperature = 0.8f;
  gen.sampling.top_k = 40;
  gen.sampling.top_p = 0.95f;
  CLI::App* gen_cmd = app.add_subcommand("generate", "complete a prompt, streaming to stdout");
  add_model_options(gen_cmd, &gen.model);
  gen_cmd->add_option("--prompt,-p", gen.prompt, "prompt text")->required();
  gen_cmd->add_option("--max-tokens,-n", gen.max_tokens, "tokens to generate")
      ->capture_default_str();
  gen_cmd->add_option("--temperature", gen.sampling.temperature, "0 = greedy")
      ->capture_default_str();
  gen_cmd->add_option("--top-p", gen.sampling.top_p, "nucleus sampling mass")
      ->capture_default_str();
  gen_cmd->add_option("--top-k", gen.sampling.top_k, "keep the k most likely (0 = all)")
      ->capture_default_str();
  gen_cmd->add_option("--seed", gen.sampling.seed, "sampling seed")->capture_default_str();
  gen_cmd->add_option("--ctx", gen.model.max_context,
                      "KV cache size in tokens (0: min(model max, 4096))");
  gen_cmd->add_flag("--chat", gen.chat,
                    "render the prompt as a user turn with the model's chat template");

  PerplexityOptions ppl;
  CLI::App* ppl_cmd = app.add_subcommand("perplexity", "perplexity of a text file");
  add_model_options(ppl_cmd, &ppl.model);
  ppl_cmd->add_option("--file,-f", ppl.file, "text file")->required();
  ppl_cmd->add_option("--ctx,-c", ppl.ctx, "window size in tokens")->capture_default_str();
  ppl_cmd->add_flag("--json", ppl.json, "print one JSON object");

  CLI11_PARSE(app, argc, argv);
  if (gen_cmd->parsed()) return run_generate(gen);
  if (ppl_cmd->parsed()) return run_perplexity(ppl);
  return 1;
}

}  // namespace tessera::apps
