// `tessera serve`: start the HTTP server, load the model through tessera::LLM while /health
// already answers, attach it, wait for a signal, drain.
// Invariant: the server is drained and stopped before the LLM (and its engine) is destroyed.
#include "src/apps/serve.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <thread>

#include "tessera/api/openai.h"
#include "tessera/engine/pretrained.h"
#include "tessera/server/server.h"
#include "tessera/text/tokenizer.h"

namespace tessera::apps {
namespace {

std::string default_model_name(const std::string& path) {
  std::filesystem::path p(path);
  while (!p.empty() && p.filename().empty()) p = p.parent_path();
  return p.filename().string();
}

}  // namespace

int run_serve(ServeOptions options) {
  if (!options.api_key_file.empty()) {
    Result<std::vector<std::string>> keys = server::read_api_key_file(options.api_key_file);
    if (!keys.ok()) {
      std::fprintf(stderr, "error: %s\n", keys.status().message().c_str());
      return 2;
    }
    options.server.api_keys = std::move(keys).value();
  } else if (const char* env = std::getenv("TESSERA_API_KEY"); env != nullptr && *env != '\0') {
    options.server.api_keys = {env};
  }
  if (options.shutdown_timeout_s < 0) {
    std::fprintf(stderr, "error: --shutdown-timeout must not be negative\n");
    return 2;
  }
  options.server.shutdown_timeout =
      std::chrono::milliseconds(static_cast<int64_t>(options.shutdown_timeout_s * 1000.0));
  const std::string name = options.served_model_name.empty()
                               ? default_model_name(options.model_path)
                               : options.served_model_name;

  Result<std::unique_ptr<server::Server>> started = server::Server::start(options.server, name);
  if (!started.ok()) {
    std::fprintf(stderr, "error: %s\n", started.status().message().c_str());
    return 2;
  }
  std::unique_ptr<server::Server> srv = std::move(started).value();
  std::fprintf(stderr, "tessera serve: listening on http://%s:%u (model '%s' loading%s)\n",
               options.server.host.c_str(), static_cast<unsigned>(srv->bound_port()),
               name.c_str(), options.server.api_keys.empty() ? "" : ", API key required");

  const auto load_start = std::chrono::steady_clock::now();
  // Test-only (docs/server.md): stretch the loading phase so /health, /ready and the 503s
  // during loading can be observed; SmolLM2 loads too fast to catch otherwise.
  if (const char* delay = std::getenv("TESSERA_DEBUG_LOAD_DELAY_MS"); delay != nullptr) {
    const long ms = std::strtol(delay, nullptr, 10);
    if (ms > 0) {
      std::fprintf(stderr, "tessera serve: TESSERA_DEBUG_LOAD_DELAY_MS: sleeping %ld ms\n", ms);
      std::this_thread::sleep_for(std::chrono::milliseconds(ms));
    }
  }
  std::fprintf(stderr, "tessera serve: loading %s ...\n", options.model_path.c_str());
  Result<std::unique_ptr<LLM>> opened = LLM::from_pretrained(options.model_path, options.llm);
  if (!opened.ok()) {
    std::fprintf(stderr, "error: %s\n", opened.status().message().c_str());
    srv->drain_and_stop();
    return 1;
  }
  std::unique_ptr<LLM> llm = std::move(opened).value();
  api::ServedModel served;
  served.name = name;
  served.tokenizer = &llm->tokenizer();
  served.chat_template = llm->chat_template();
  served.max_model_len = llm->engine().max_model_len();
  served.eos_token_ids = llm->engine().config().eos_token_ids;
  if (Result<std::string> source = engine::chat_template_source(llm->loaded()); source.ok()) {
    served.tool_call_format = api::detect_tool_call_format(*source);
  }
  served.created = static_cast<int64_t>(std::time(nullptr));
  srv->attach(&llm->engine(), std::move(served));
  const double load_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  std::fprintf(stderr,
               "tessera serve: ready in %.1f s (max_model_len %d, max_num_seqs %d%s)\n", load_s,
               llm->engine().max_model_len(), llm->engine().config().max_num_seqs,
               llm->chat_template() != nullptr ? "" : ", no chat template");

  srv->wait_for_shutdown_request();
  std::fprintf(stderr, "tessera serve: shutting down (drain up to %.1f s)\n",
               options.shutdown_timeout_s);
  srv->drain_and_stop();
  srv.reset();
  llm.reset();
  std::fprintf(stderr, "tessera serve: stopped\n");
  return 0;
}

}  // namespace tessera::apps
