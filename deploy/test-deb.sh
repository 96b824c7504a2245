#!/usr/bin/env bash
# Installs the package built by deploy/build-deb.sh on this machine, checks
# what it put where, and removes it again (root needed).
set -euo pipefail
deb="${1:?usage: deploy/test-deb.sh target/debian/ticketgate_*.deb}"
dpkg -i "$deb"
trap 'dpkg --purge ticketgate >/dev/null' EXIT
test -x /usr/bin/ticketgate
/usr/bin/ticketgate --version
getent passwd ticketgate >/dev/null            # sysusers ran
test "$(stat -c '%U %a' /var/lib/ticketgate)" = "ticketgate 700"   # tmpfiles ran
test "$(stat -c '%G %a' /etc/ticketgate)" = "ticketgate 750"
test -f /lib/systemd/system/ticketgate.service
systemd-analyze verify /lib/systemd/system/ticketgate.service
systemd-analyze security --offline=yes /lib/systemd/system/ticketgate.service | tail -n 1
man -w ticketgate >/dev/null 2>&1 || test -f /usr/share/man/man1/ticketgate.1.gz
test -f /usr/share/bash-completion/completions/ticketgate
# The documented first steps, as the service's user.
/usr/bin/ticketgate --config /etc/ticketgate/ticketgate.toml init --system
test "$(stat -c '%G %a' /etc/ticketgate/ticketgate.toml)" = "ticketgate 640"
runuser -u ticketgate -- /usr/bin/ticketgate --config /etc/ticketgate/ticketgate.toml check --config-only
rm -f /etc/ticketgate/ticketgate.toml
echo "package ok"
