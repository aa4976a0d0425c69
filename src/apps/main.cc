// The `tessera` command line: dispatches to the subcommands in src/apps/.
#include "src/apps/cli.h"

int main(int argc, char** argv) { return tessera::apps::run_cli(argc, argv); }
