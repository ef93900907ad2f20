#!/usr/bin/env bash
# System programs the test suite drives for real (not needed to serve):
#   nginx - the reverse proxy of the multi-replica test (tests/integration/test_replicas.py);
#   chromium, chromium-driver - the real browser of the page test (tests/integration/test_page.py);
#   espeak-ng, flite, festival + festvox-kallpc16k, festvox-kdlpc16k, festvox-us-slt-hts - the text-to-speech engines that voice
#     the demo model's training data (ser_train/tts.py; `make data`, tests/train/test_tts.py), and
#   festvox-italp16k, festvox-itapc16k, festvox-ca-ona-hts - festival's Italian and Catalan voices (the 'accented' engine);
#   festvox-czech-dita, -krb, -ph, festvox-suopuhe-lj, -mv, festvox-ru - its Czech, Finnish and Russian ones ('accented2').
# Installed with apt when we are root; otherwise say exactly what to do.
# `--tts` checks only the text-to-speech engines (what `make data` needs).
set -euo pipefail
missing=()
if [ "${1:-}" != "--tts" ]; then
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || missing+=(nginx)
  command -v chromium >/dev/null 2>&1 || missing+=(chromium)
  command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
fi
command -v espeak-ng >/dev/null 2>&1 || missing+=(espeak-ng)
command -v flite >/dev/null 2>&1 || missing+=(flite)
command -v festival >/dev/null 2>&1 || missing+=(festival)
[ -d /usr/share/festival/voices/english/kal_diphone ] || missing+=(festvox-kallpc16k)
[ -d /usr/share/festival/voices/english/ked_diphone ] || missing+=(festvox-kdlpc16k)
[ -d /usr/share/festival/voices/us/cmu_us_slt_arctic_hts ] || missing+=(festvox-us-slt-hts)
[ -d /usr/share/festival/voices/italian/lp_diphone ] || missing+=(festvox-italp16k)
[ -d /usr/share/festival/voices/italian/pc_diphone ] || missing+=(festvox-itapc16k)
[ -d /usr/share/festival/voices/catalan/upc_ca_ona_hts ] || missing+=(festvox-ca-ona-hts)
for voice in czech/czech_dita:festvox-czech-dita czech/czech_krb:festvox-czech-krb czech/czech_ph:festvox-czech-ph \
             finnish/suo_fi_lj_diphone:festvox-suopuhe-lj finnish/hy_fi_mv_diphone:festvox-suopuhe-mv \
             russian/msu_ru_nsh_clunits:festvox-ru; do
  [ -d "/usr/share/festival/voices/${voice%%:*}" ] || missing+=("${voice##*:}")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing ${missing[*]} with apt-get ..."
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
echo "error: these programs are needed: ${missing[*]}. Install them (e.g. 'sudo apt-get install ${missing[*]}') and run make again." >&2
exit 1
