// `tessera` subcommand dispatch (CLI11): parses options into the plain structs of each
// subcommand and runs it. Invariant: parsing errors exit through CLI11 with its message.
#include "src/apps/cli.h"

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <string>

#include "src/apps/generate.h"
#include "src/apps/perplexity.h"
#include "src/apps/serve.h"

namespace tessera::apps {
namespace {

void add_model_options(CLI::App* cmd, AppModelOptions* m) {
  cmd->add_option("--model,-m", m->path, "a .gguf file or an HF model directory")->required();
  cmd->add_option("--threads,-t", m->threads, "CPU threads (0: all cores)");
  cmd->add_option("--backend", m->backend, "cpu | reference | cuda | emulated")->capture_default_str();
}

std::string seconds_str(std::chrono::milliseconds ms) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%g", static_cast<double>(ms.count()) / 1000.0);
  return buf;
}

CLI::App* add_serve_command(CLI::App& app, ServeOptions* s) {
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server");
  cmd->add_option("--model,-m", s->model_path, "a .gguf file or an HF model directory")
      ->required();
  cmd->add_option("--host", s->server.host, "address to listen on")->capture_default_str();
  cmd->add_option("--port", s->server.port, "TCP port (0: any free port)")->capture_default_str();
  cmd->add_option("--served-model-name", s->served_model_name,
                  "the name clients pass as `model` (default: the model file name)");
  cmd->add_option("--api-key-file", s->api_key_file,
                  "file of accepted API keys, one per line (else env TESSERA_API_KEY)");
  cmd->add_option("--max-num-seqs", s->llm.max_num_seqs, "sequences per engine step")
      ->capture_default_str();
  cmd->add_option("--max-num-batched-tokens", s->llm.max_num_batched_tokens,
                  "tokens per engine step")
      ->capture_default_str();
  cmd->add_option("--max-model-len", s->llm.max_model_len,
                  "context length (0: min(model max, 4096))")
      ->capture_default_str();
  cmd->add_option("--shutdown-timeout", s->shutdown_timeout_s,
                  "seconds running requests may take to finish on SIGTERM")
      ->capture_default_str();
  cmd->add_option("--threads,-t", s->llm.threads, "CPU compute threads (0: all cores)");
  cmd->add_option("--backend", s->llm.backend, "cpu | reference | cuda | emulated")->capture_default_str();
  cmd->add_flag("--enforce-eager", s->llm.enforce_eager,
                "run every step op by op: no CUDA graphs for decode steps");
  cmd->add_option("--max-concurrent-requests", s->server.max_concurrent_requests,
                  "generation requests in flight before 429")
      ->capture_default_str();
  cmd->add_option("--max-request-body-bytes", s->server.max_body_bytes,
                  "request body limit (413 beyond)")
      ->capture_default_str();
  cmd->add_option("--http-threads", s->server.io_threads, "HTTP I/O threads")
      ->capture_default_str();
  // Seconds given as decimals (0.05 is fine); stored as milliseconds in ServerConfig, which
  // validate() checks (so 0 or a negative value is refused with the flag's name).
  const auto add_seconds = [cmd](const char* name, std::chrono::milliseconds* target,
                                 const char* help) {
    cmd->add_option_function<double>(
           name,
           [target](double seconds) {
             *target = std::chrono::milliseconds(static_cast<int64_t>(seconds * 1000.0));
           },
           std::string(help) + " [default: " + seconds_str(*target) + "]")
        ->type_name("SECONDS");
  };
  add_seconds("--sse-keepalive-interval", &s->server.keepalive_interval,
              "seconds without output before a streamed response sends `: keep-alive`");
  add_seconds("--http-read-timeout", &s->server.read_timeout,
              "seconds a client has to send one request (headers + body) once it started");
  add_seconds("--http-idle-timeout", &s->server.idle_timeout,
              "seconds an idle keep-alive connection stays open");
  cmd->add_option("--max-connections", s->server.max_connections,
                  "open HTTP connections; further ones are closed at once")
      ->capture_default_str();
  cmd->add_flag("--enable-prefix-caching,!--no-enable-prefix-caching",
                  s->llm.enable_prefix_caching, "reuse KV blocks of shared prompt prefixes");
  return cmd;
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
  gen_cmd->add_flag("--enforce-eager", gen.enforce_eager,
                    "run every step op by op: no CUDA graphs for decode steps");

  PerplexityOptions ppl;
  CLI::App* ppl_cmd = app.add_subcommand("perplexity", "perplexity of a text file");
  add_model_options(ppl_cmd, &ppl.model);
  ppl_cmd->add_option("--file,-f", ppl.file, "text file")->required();
  ppl_cmd->add_option("--ctx,-c", ppl.ctx, "window size in tokens")->capture_default_str();
  ppl_cmd->add_flag("--json", ppl.json, "print one JSON object");

  ServeOptions serve;
  CLI::App* serve_cmd = add_serve_command(app, &serve);

  CLI11_PARSE(app, argc, argv);
  if (serve_cmd->parsed()) return run_serve(serve);
  if (gen_cmd->parsed()) return run_generate(gen);
  if (ppl_cmd->parsed()) return run_perplexity(ppl);
  return 1;
}

}  // namespace tessera::apps
