#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every ctest suite; then builds the
# CPU code again with AddressSanitizer + UBSan and runs the suites under them (tools/sanitize.sh).
# (`cuda` tests skip with a message where no GPU is present.)
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
(cd build && ctest --output-on-failure --timeout 600 -j "$(nproc)")
tools/sanitize.sh
