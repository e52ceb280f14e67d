#!/usr/bin/env bash
# setup.sh: installs what is missing (Debian packages), builds troupe, and runs the demo workflow.
#
#   ./setup.sh            install + build + run scripts/workflows/pr_review.lua: offline on the mock
#                         provider, or on real vendors for the keys set (OPENAI_API_KEY,
#                         ANTHROPIC_API_KEY, GEMINI_API_KEY; TROUPE_OFFLINE=1 forces offline)
#   ./setup.sh --no-demo  install + build only
set -euo pipefail
cd "$(dirname "$0")"

packages=(build-essential cmake ninja-build pkg-config liblua5.4-dev nlohmann-json3-dev
  libcurl4-openssl-dev libssl-dev libboost-dev libboost-filesystem-dev libsqlite3-dev libgtest-dev libgmock-dev
  libcli11-dev libvalijson-dev libre2-dev libyaml-cpp-dev libbenchmark-dev clang libclang-rt-14-dev
  python3-dev pybind11-dev python3-pybind11 python3-pytest python3-nbclient python3-ipykernel
  python3-nbformat python3-pandas python3-matplotlib python3-pip libfaketime)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [[ $(id -u) -ne 0 ]] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DTROUPE_WERROR="${TROUPE_WERROR:-OFF}" >/dev/null
cmake --build build -j"$(nproc)"
echo "setup: built build/troupe and the plugins in build/plugins"

if [[ "${1:-}" != "--no-demo" ]]; then
  # Without a troupe.yaml, a vendor whose key is in the environment is used for real; the
  # other agents of the demo stay on the offline mock (host/config/config.h).
  real=()
  [[ -n "${OPENAI_API_KEY:-}" ]] && real+=(openai)
  [[ -n "${ANTHROPIC_API_KEY:-}" ]] && real+=(anthropic)
  [[ -n "${GEMINI_API_KEY:-}${GOOGLE_API_KEY:-}" ]] && real+=(gemini)
  if [[ -n "${TROUPE_OFFLINE:-}" && "${TROUPE_OFFLINE}" != 0 ]] || ((${#real[@]} == 0)); then
    echo "setup: running the demo workflow (offline: mock provider)"
  else
    echo "setup: running the demo workflow (real providers: ${real[*]}; the rest on the mock)"
  fi
  ./build/troupe --store build/demo.db run scripts/workflows/pr_review.lua \
    --input @scripts/workflows/examples/pr_review_input.json
fi
