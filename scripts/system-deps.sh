#!/usr/bin/env bash
# Installs the Debian packages the demo, tests and benchmark use, if missing:
# nginx (the test origin), espeak-ng (speech samples), openssl (a throwaway TLS certificate in
# the tests), aria2 and curl (benchmark peers), chromium, chromium-driver, nodejs and npm (the
# browser test of `runanywhere serve`). EXTRA_DEPS adds "command:package" pairs, separated by
# spaces.
set -euo pipefail
want=()
# shellcheck disable=SC2206  # EXTRA_DEPS is split on spaces on purpose
extra=(${EXTRA_DEPS:-})
for pair in "nginx:nginx" "espeak-ng:espeak-ng" "openssl:openssl" "${extra[@]}"; do
  [ -n "$pair" ] || continue
  cmd=${pair%%:*}; pkg=${pair#*:}
  if ! command -v "$cmd" >/dev/null 2>&1 && [ ! -x "/usr/sbin/$cmd" ]; then want+=("$pkg"); fi
done
[ ${#want[@]} -eq 0 ] && exit 0
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then SUDO="sudo"; else
    echo "please install: ${want[*]} (apt-get install ${want[*]})" >&2; exit 1; fi
fi
echo "installing system packages: ${want[*]}" >&2
$SUDO apt-get update -qq >/dev/null
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
