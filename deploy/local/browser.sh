#!/usr/bin/env bash
# Headless Chromium and its driver (Debian's chromium and chromium-driver) for the browser tests
# of the saga tracker's console; installed when missing and this machine can (root + apt).
# Prints CHOREOGRAPH_CHROMIUM and CHOREOGRAPH_CHROMEDRIVER.
set -euo pipefail

chromium=$(command -v chromium || true)
driver=$(command -v chromedriver || true)
if [ -z "$chromium" ] || [ -z "$driver" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "browser: installing chromium chromium-driver" >&2
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    chromium=$(command -v chromium)
    driver=$(command -v chromedriver)
  else
    echo "browser: missing chromium and chromium-driver (Debian packages); install them" >&2
    exit 1
  fi
fi
echo "CHOREOGRAPH_CHROMIUM=$chromium"
echo "CHOREOGRAPH_CHROMEDRIVER=$driver"
