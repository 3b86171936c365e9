#!/usr/bin/env bash
# Install every Debian package vdisk needs, if any is missing (DESIGN.md §5).
#
#   bash scripts/setup.sh
#
# Idempotent: when everything is present it prints one line and changes
# nothing. Otherwise it runs `apt-get update` and `apt-get install` (through
# sudo when not root). Packages come from the configured apt sources only.
set -euo pipefail

# Build: compiler, cmake, pkg-config and the libraries libvdisk links.
# Tools and tests: FUSE3 for vhdmount, dosfstools/mtools/qemu-utils as
# interop oracles. clang for the fuzzers and sanitizer builds.
# libarchive: tar streams in mkvhd/vhdtool. libnbd/nbdkit: images on NBD
# exports and the nbdkit plugin. tpm2-tss: the TPM anchor; swtpm and
# tpm2-tools to test it. fio, zstd, xz, python3-venv: tests and benchmarks.
PACKAGES=(
    build-essential cmake pkg-config
    libsodium-dev libssl-dev libxxhash-dev libcmocka-dev
    libfuse3-dev fuse3
    dosfstools mtools qemu-utils
    clang
    libarchive-dev zstd xz-utils
    libnbd-dev libnbd-bin nbdkit nbdkit-plugin-dev
    libtss2-dev swtpm swtpm-tools tpm2-tools
    fio python3-venv
    util-linux-extra
)

missing=()
for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "install ok installed" ]]; then
        missing+=("$pkg")
    fi
done

if ((${#missing[@]} == 0)); then
    echo "setup: all ${#PACKAGES[@]} required packages are installed"
    exit 0
fi

echo "setup: installing missing packages: ${missing[*]}"

if ! command -v apt-get >/dev/null 2>&1; then
    echo "setup: apt-get not found; install by hand: ${missing[*]}" >&2
    exit 1
fi

as_root=()
if [[ "$(id -u)" -ne 0 ]]; then
    if ! command -v sudo >/dev/null 2>&1; then
        echo "setup: not root and sudo is not installed; as root run:" >&2
        echo "  apt-get install -y --no-install-recommends ${missing[*]}" >&2
        exit 1
    fi
    # -n under CI or without a terminal: fail instead of hanging on a prompt.
    if [[ -t 0 ]]; then
        as_root=(sudo)
    else
        as_root=(sudo -n)
    fi
fi

# sudo resets the environment, so pass DEBIAN_FRONTEND through env(1).
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends "${missing[@]}"

# Check again: apt-get can succeed without installing what was asked.
still=()
for pkg in "${missing[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null || true)
    [[ "$status" == "install ok installed" ]] || still+=("$pkg")
done
if ((${#still[@]} > 0)); then
    echo "setup: still missing after apt-get install: ${still[*]}" >&2
    exit 1
fi
echo "setup: installed ${missing[*]}"
