#!/usr/bin/env bash
# The system packages ddpm_lit's tests and demo use, installed with apt-get where this machine allows it.
#
#   tools/system_deps.sh [browser] [data]      (no argument: both; `make system-deps`)
#
#   browser  chromium, chromium-driver: the browser tests (tests/test_docs_browser.py, tests/test_lab_browser.py)
#   data     dataset-fashion-mnist: Fashion-MNIST on disk (make demo, tests/test_evaluate.py, chapter 04a's figure)
#
# Prints nothing when everything is there. What is missing is installed when this runs as root on a machine with
# apt-get (Debian, Ubuntu); otherwise it says what is missing and the command that installs it, and exits 0: the
# tests that need a missing piece skip, and the test run ends by listing them. With DDPM_LIT_REQUIRE_ALL=1 (set by
# .ci/run) a piece still missing at the end is an error (exit 1).
# The docs need no system package: MathJax 2 comes from the jupyter-server-mathjax package of the dev extras when
# Debian's libjs-mathjax is not installed.
set -uo pipefail

want=("$@"); [ ${#want[@]} -eq 0 ] && want=(browser data)

have_cmd() { local c; for c in "$@"; do [ -n "$c" ] && command -v "$c" >/dev/null 2>&1 && return 0; done; return 1; }
# the same places the tests look (tests/test_docs_browser.py: browser fixture; ddpm_lit.data.find_data)
have() {
  case "$1" in
    chromium) have_cmd "${CHROME_BIN:-}" chromium chromium-browser google-chrome google-chrome-stable ;;
    chromium-driver) have_cmd "${CHROMEDRIVER:-}" chromedriver "${CHROMEWEBDRIVER:+$CHROMEWEBDRIVER/chromedriver}" \
                       /usr/lib/chromium/chromedriver ;;
    dataset-fashion-mnist) [ -n "${DDPM_LIT_DATA:-}" ] ||
                           compgen -G '/usr/share/datasets/fashion-mnist/train-images-idx3-ubyte*' >/dev/null ;;
  esac
}

pkgs=()
for w in "${want[@]}"; do
  case "$w" in
    browser) pkgs+=(chromium chromium-driver) ;;
    data) pkgs+=(dataset-fashion-mnist) ;;
    *) echo "system_deps: unknown piece '$w' (expected: browser, data)" >&2; exit 2 ;;
  esac
done
missing() { local p; for p in "${pkgs[@]}"; do have "$p" || echo "$p"; done; }

need=($(missing))
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "system_deps: installing ${need[*]} (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null \
    || echo "system_deps: apt-get install ${need[*]} failed" >&2
  need=($(missing))
  [ ${#need[@]} -eq 0 ] && exit 0
  echo "system_deps: still missing after apt-get: ${need[*]}" >&2
else
  why=$([ "$(id -u)" = 0 ] && echo "no apt-get here" || echo "not root")
  echo "system_deps: missing ${need[*]} ($why). The tests that need them will skip; to enable them:" >&2
  echo "    sudo apt-get install ${need[*]}      (or: sudo tools/system_deps.sh ${want[*]})" >&2
fi
if [ "${DDPM_LIT_REQUIRE_ALL:-0}" = 1 ]; then
  echo "system_deps: DDPM_LIT_REQUIRE_ALL=1 and ${need[*]} missing: failing" >&2
  exit 1
fi
exit 0
