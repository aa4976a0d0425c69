// `tessera` subcommand dispatch (CLI11).
#include "src/apps/cli.h"

#include <CLI/CLI.hpp>

namespace tessera::apps {

int run_cli(int argc, char** argv) {
  CLI::App app{"Tessera: LLM inference server"};
  app.require_subcommand(1);
  CLI11_PARSE(app, argc, argv);
  return 0;
}

}  // namespace tessera::apps
