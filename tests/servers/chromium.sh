#!/usr/bin/env bash
# Installs Debian's headless browser for the help center's browser tests
# (tests/browser.rs) when it is missing: chromium and chromium-driver.
# Root needed, like tests/servers/mailservers.sh.
set -euo pipefail

missing=()
for p in chromium chromium-driver; do
    [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *" installed" ]] || missing+=("$p")
done
((${#missing[@]})) || exit 0
log="${TMPDIR:-/tmp}/ticketgate-chromium-install.log"
{
    DEBIAN_FRONTEND=noninteractive apt-get update -q &&
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
} >>"$log" 2>&1 || {
    tail -n 30 "$log" >&2
    echo "chromium.sh: installing ${missing[*]} failed (full log: $log)" >&2
    exit 1
}
