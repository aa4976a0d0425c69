// `tessera generate`: prompt in, streamed completion out (stdout), speed summary on stderr.
// Runs through tessera::LLM (the engine), like any library user.
#pragma once

#include <cstdint>
#include <string>

#include "src/apps/app_model.h"
#include "tessera/sampling/sampling_params.h"

namespace tessera::apps {

struct GenerateOptions {
  AppModelOptions model;
  std::string prompt;
  int32_t max_tokens = 128;
  sampling::SamplingParams sampling;  // an unset seed means seed 0 (reproducible runs)
  bool chat = false;                  // wrap the prompt as one user turn of the model's chat format
  bool enforce_eager = false;         // no CUDA graphs for decode steps
};

int run_generate(const GenerateOptions& options);

}  // namespace tessera::apps
