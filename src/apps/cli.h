// Entry point of the `tessera` CLI (subcommands: generate, perplexity, serve).
#pragma once

namespace tessera::apps {
int run_cli(int argc, char** argv);
}  // namespace tessera::apps
