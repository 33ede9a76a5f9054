#!/usr/bin/env bash
# Installs what dcache needs from Debian (only what is missing), then
# configures and builds it in build/ (and build-asan/ with --asan).
# Idempotent: run it as often as you like.
#
#   tools/setup.sh            install + build
#   tools/setup.sh --asan     also build with AddressSanitizer + UBSan
#   tools/setup.sh --test     also install what the tests need beyond the
#                             build (Chromium for the dashboard's browser test)
#   tools/setup.sh --no-build install only
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
asan=0
build=1
tests=0
for a in "$@"; do
  case $a in
    --asan) asan=1 ;;
    --test) tests=1 ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "setup.sh: unknown option $a" >&2; exit 2 ;;
  esac
done

# Build, test and benchmark dependencies, all from Debian.
packages=(
  build-essential autoconf automake pkg-config
  libuv1-dev libsodium-dev libmsgpack-dev libhiredis-dev libpq-dev
  libcmocka-dev node-llhttp libjansson-dev libcurl4-openssl-dev
  curl jq prometheus redis-server postgresql wrk nginx-light clang
  python3 iproute2 nftables faketime
)
# The dashboard is built with Node.js and npm (the machine's own when it
# has them); its browser test drives Debian's Chromium.
command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
((tests)) && packages+=(chromium)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -eq 0 ]] || sudo="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  # Package scripts may try to start services (redis, nginx, prometheus);
  # the project never uses those system instances, so a refusal is fine.
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Vite needs Node.js 20.19 or newer (dashboard/package.json's engines).
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)'; then
  echo "setup: the dashboard needs Node.js 20.19 or newer; this machine has $(node --version 2>&1)" >&2
  exit 1
fi
((build)) || exit 0

jobs=$(nproc 2>/dev/null || echo 2)
cd "$top"
if [[ ! -x configure || configure.ac -nt configure ]]; then
  echo "setup: autoreconf"
  autoreconf -fi >/dev/null 2>&1 || autoreconf -fi
fi

build_dir() { # dir configure-args...
  local dir=$1; shift
  mkdir -p "$top/$dir"
  cd "$top/$dir"
  if [[ ! -f Makefile || ../configure -nt config.status ]]; then
    echo "setup: configuring $dir $*"
    ../configure -q "$@"
  fi
  echo "setup: building $dir"
  make -s -j"$jobs"
  cd "$top"
}

build_dir build
((asan)) && build_dir build-asan --enable-sanitizers
echo "setup: built $top/build/dcache-node and $top/build/dcache-admin"
