#!/usr/bin/env bash
# Install what is missing, build, and run the whole test suite through CTest. CI runs this.
#
#   scripts/test.sh                 # everything (unit + integration), a few minutes on 2 cores
#   scripts/test.sh -L unit         # extra arguments go to ctest
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
# Tests run one at a time: each already uses every core, and two OpenMP pools spinning on the
# same cores slow each other down many times over.
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure "$@"
