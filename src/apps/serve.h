// `tessera serve`: the OpenAI-compatible HTTP server over one model (flags spelled as vLLM's).
// Listens first (/health answers while the model loads, /ready is 503 until it has), then runs
// until SIGTERM/SIGINT and drains. Invariant: exit code 0 after a clean drain.
#pragma once

#include <cstdint>
#include <string>

#include "tessera/engine/llm.h"
#include "tessera/server/config.h"

namespace tessera::apps {

struct ServeOptions {
  std::string model_path;
  std::string served_model_name;  // empty: the model file or directory name
  std::string api_key_file;       // empty: TESSERA_API_KEY if set, else no authentication
  double shutdown_timeout_s = 30.0;
  LlmOptions llm;
  server::ServerConfig server;
};

int run_serve(ServeOptions options);

}  // namespace tessera::apps
