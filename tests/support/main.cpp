#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <ATen/Parallel.h>

#include "rlhf/core/logging.h"

int main(int argc, char** argv) {
    rlhf::init_logging("warn");  // tests assert on results, not on log lines
    at::set_num_threads(2);      // deterministic, and what CI has
    return Catch::Session().run(argc, argv);
}
