#!/usr/bin/env bash
# Installs the Debian packages the demo, tests and benchmark use, if missing:
# nginx (the test origin), espeak-ng (speech samples), openssl (the tests' throwaway TLS
# certificate), aria2 and curl (benchmark peers).
set -euo pipefail
want=()
for pair in "nginx:nginx" "espeak-ng:espeak-ng" "openssl:openssl" "${EXTRA_DEPS:-}"; do
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
