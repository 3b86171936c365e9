#!/usr/bin/env bash
# Install dependencies, then configure and build vdisk with CMake.
#
#   bash scripts/build.sh [EXTRA CMAKE CONFIGURE ARGS...]
#
# Environment:
#   BUILD_DIR   build directory (default: build, relative to the repo root)
#   BUILD_TYPE  CMAKE_BUILD_TYPE (default: Release)
# Warnings are errors (-DVD_WERROR=ON), as in CI.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

BUILD_DIR=${BUILD_DIR:-build}
BUILD_TYPE=${BUILD_TYPE:-Release}

bash "$ROOT/scripts/setup.sh"

echo "build: configuring $BUILD_DIR ($BUILD_TYPE)"
cmake -S "$ROOT" -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DVD_WERROR=ON "$@"
echo "build: building $BUILD_DIR"
cmake --build "$BUILD_DIR" -j"$(nproc)"
echo "build: $BUILD_DIR is up to date"
