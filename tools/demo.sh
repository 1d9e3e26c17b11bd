#!/usr/bin/env bash
# The main job: installs what is missing, builds, and runs the end-to-end example — a
# width-nested MLP trained with the sorted update rule, every sub-model evaluated.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh
tools/build.sh
build/bin/sn_demo "$@"
