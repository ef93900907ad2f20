#!/usr/bin/env bash
# System programs the test suite drives for real (not needed to serve):
#   nginx - the reverse proxy of the multi-replica test (tests/integration/test_replicas.py);
#   chromium, chromium-driver - the real browser of the page test (tests/integration/test_page.py).
# Installed with apt when we are root; otherwise say exactly what to do.
set -euo pipefail
missing=()
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} with apt-get for the tests ..."
  apt-get update -qq
  # policy-rc.d 101: packages must not start their services (the tests start their own, on loopback).
  made_policy=0
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d && made_policy=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  [ "$made_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d
  exit 0
fi
echo "error: the tests need: ${missing[*]}. Install them (e.g. 'sudo apt-get install ${missing[*]}') and run make again." >&2
exit 1
