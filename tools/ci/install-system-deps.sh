#!/usr/bin/env bash
# System packages the test suite drives for real: Debian's Chromium and its WebDriver, for the
# catalogue-site browser test (tests/test_site.py); the XRootD server and client (xrdcp, xrdfs)
# and a C compiler for its loopback bind shim, for the data-services tests (tools/services/); the
# native C++ library's toolchain and dependencies (src/libhepbundle: CMake, OpenSSL 3,
# nlohmann-json, yaml-cpp, libunistring, GoogleTest, the BLAKE3 C sources of librust-blake3-dev,
# clang with its compiler runtime for the sanitizer and fuzz build: libclang-rt-14-dev holds the
# ASan, UBSan and libFuzzer runtimes that -fsanitize=address,undefined,fuzzer link, which clang
# only recommends).
# Idempotent; needs root (CI and dev machines run as root here). Skips apt entirely when
# everything is already installed.
set -euo pipefail

packages=(chromium chromium-driver xrootd-server xrootd-client gcc
  cmake g++ make pkg-config libssl-dev nlohmann-json3-dev libyaml-cpp-dev libunistring-dev
  libgtest-dev librust-blake3-dev clang libclang-rt-14-dev)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: need root to install ${missing[*]} (or install them yourself)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q "${missing[@]}"
