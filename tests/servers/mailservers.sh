#!/usr/bin/env bash
# Private Dovecot (IMAP/IMAPS/LMTP) + Postfix (SMTP) for ticketgate's tests.
#
#   tests/servers/mailservers.sh start  STATE_DIR   # prints `export TG_...=...` lines
#   tests/servers/mailservers.sh stop   STATE_DIR
#   tests/servers/mailservers.sh status STATE_DIR
#
# Everything (config, queue, pid files, logs, mail, TLS cert) lives under
# STATE_DIR. /etc/dovecot is not used at all; of /etc/postfix, Postfix only
# reads the packaged postfix-files and main.cf's multi-instance settings.
# Nothing is written outside STATE_DIR except the packages and the system
# user tgmail. Everything listens on 127.0.0.1 only and nothing is relayed
# off the machine. See README.md beside this file.
set -euo pipefail

usage() { echo "usage: $0 start|stop|status STATE_DIR" >&2; exit 2; }
[[ $# -eq 2 ]] || usage
CMD=$1
case $CMD in start|stop|status) ;; *) usage ;; esac

IMAP_PORT=${TG_IMAP_PORT:-14143}
# A second Dovecot on the same mail, offering neither MOVE nor UIDPLUS.
IMAP_BASIC_PORT=${TG_IMAP_BASIC_PORT:-14144}
IMAPS_PORT=${TG_IMAPS_PORT:-14993}
LMTP_PORT=${TG_LMTP_PORT:-14024}
SMTP_PORT=${TG_SMTP_PORT:-14025}
SMTP_REJECT_PORT=${TG_SMTP_REJECT_PORT:-14026}
DOMAINS="example.com mueller-maschinenbau.de acme-logistics.co.uk customer.test"
MAIL_USER=tgmail         # Dovecot refuses to access mail as UID 0
PASSWORD=secret          # every address logs in with this
START_TIMEOUT=30         # seconds to wait for all ports

die() { echo "mailservers: $*" >&2; exit 1; }

# The path ends up unquoted in Dovecot/Postfix config and in the env file.
[[ $2 =~ ^[A-Za-z0-9_./+-]+$ ]] || die "STATE_DIR may only contain [A-Za-z0-9_./+-]: '$2'"
if [[ $CMD == start ]]; then mkdir -p "$2"; fi
if [[ ! -d $2 ]]; then
    [[ $CMD == status ]] && { echo "not running (no $2)"; exit 3; }
    exit 0   # stop: nothing was ever started there
fi
STATE=$(cd "$2" && pwd -P)

DC=$STATE/dovecot            DC_CONF=$STATE/dovecot/dovecot.conf
DC_RUN=$STATE/dovecot/run    DC_LOG=$STATE/dovecot/dovecot.log
DCB_CONF=$STATE/dovecot/basic.conf  DCB_RUN=$STATE/dovecot/run-basic
PF=$STATE/postfix            PF_CONF=$STATE/postfix/etc
PF_QUEUE=$STATE/postfix/queue PF_LOG=$STATE/postfix/postfix.log
MAIL=$STATE/mail             TLS=$STATE/tls
ENV_FILE=$STATE/env          FINGERPRINT=$STATE/.fingerprint
PORTS="$IMAP_PORT $IMAPS_PORT $IMAP_BASIC_PORT $LMTP_PORT $SMTP_PORT $SMTP_REJECT_PORT"

# ---------------------------------------------------------------- helpers

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid from a pid file, only if that process is alive and runs the expected
# binary (guards against a stale file whose pid was reused).
live_pid() { # pidfile exe-basename
    local pid exe
    [[ -r $1 ]] || return 1
    pid=$(tr -dc 0-9 <"$1")
    [[ -n $pid ]] || return 1
    exe=$(readlink "/proc/$pid/exe" 2>/dev/null) || return 1
    [[ ${exe##*/} == "$2" ]] || return 1
    echo "$pid"
}
# ...and only if it is this STATE_DIR's instance (by config path).
dovecot_pid() { # [run-dir conf]
    local pid run=${1:-$DC_RUN} conf=${2:-$DC_CONF}
    pid=$(live_pid "$run/master.pid" dovecot) &&
        grep -qzxF -- "$conf" "/proc/$pid/cmdline" && echo "$pid"
}
postfix_pid() {
    local pid
    pid=$(live_pid "$PF_QUEUE/pid/master.pid" master) &&
        grep -qzxF -- "MAIL_CONFIG=$PF_CONF" "/proc/$pid/environ" && echo "$pid"
}

log_tails() {
    local f
    for f in "$DC_LOG" "$PF_LOG" "$STATE/start.log"; do
        [[ -s $f ]] && { echo "--- last lines of $f:"; tail -n 25 "$f"; }
    done
    return 0
}

# Both masters start their own session (setsid), and their children stay in
# it. Signalling the whole group stops everything at once: Dovecot's master
# alone waits up to ~6 s for idle login/lmtp processes to quit.
# Zombies count as gone: this machine's init reaps them only after a while.
group_alive() { (($(ps -o stat= -s "$1" | grep -vc '^Z') > 0)); }
stop_group() { # name pid
    local i target=$2
    [[ $(ps -o pgid= -p "$2" | tr -d ' ') == "$2" ]] && target=-$2
    kill -TERM -- "$target" 2>/dev/null || return 0
    for ((i = 0; i < 200; i++)); do
        group_alive "$2" || return 0
        sleep 0.05
    done
    echo "mailservers: $1 (pid $2) still running 10 s after SIGTERM, killing it" >&2
    kill -KILL -- "$target" 2>/dev/null || true
}

# After a crashed master, its children live on for a while in its session.
# Its pid number cannot be reused while they do, so they are surely ours.
kill_orphans() { # pidfile binary-dir
    local sid p
    [[ -r $1 ]] || return 0
    sid=$(tr -dc 0-9 <"$1")
    [[ -n $sid ]] || return 0
    for p in $(ps -o pid= -s "$sid"); do
        [[ $(readlink "/proc/$p/exe" 2>/dev/null) == "$2"/* ]] && kill -TERM "$p" 2>/dev/null
    done
    return 0
}

do_stop() {
    local pid p i old_ports=""
    # Ports of the instance that is running, which may differ from this call's.
    [[ -r $ENV_FILE ]] && old_ports=$(sed -n 's/^TG_[A-Z_]*PORT=//p' "$ENV_FILE")
    if pid=$(postfix_pid); then
        stop_group postfix "$pid"
    else
        kill_orphans "$PF_QUEUE/pid/master.pid" /usr/lib/postfix/sbin
    fi
    if pid=$(dovecot_pid); then
        stop_group dovecot "$pid"
    else
        kill_orphans "$DC_RUN/master.pid" /usr/lib/dovecot
    fi
    if pid=$(dovecot_pid "$DCB_RUN" "$DCB_CONF"); then
        stop_group dovecot-basic "$pid"
    else
        kill_orphans "$DCB_RUN/master.pid" /usr/lib/dovecot
    fi
    # Dovecot refuses to start while its pid file names a process, and a
    # dead master stays a zombie here for a while.
    rm -f "$DC_RUN/master.pid" "$DCB_RUN/master.pid"
    # Children hold inherited listening sockets for a moment after the master.
    for p in $old_ports; do
        for ((i = 0; i < 50; i++)); do port_open "$p" || break; sleep 0.1; done
    done
    rm -f "$FINGERPRINT"
}

# --------------------------------------------------------------- install

install_packages() {
    local p missing=()
    for p in dovecot-imapd dovecot-lmtpd postfix openssl; do
        [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == *" installed" ]] || missing+=("$p")
    done
    ((${#missing[@]})) || return 0
    # Answer postfix's debconf question up front; the packaged services do
    # not start here (policy-rc.d), and we never use them anyway.
    echo "postfix postfix/main_mailer_type select Local only" | debconf-set-selections
    {
        DEBIAN_FRONTEND=noninteractive apt-get update -q &&
        DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
    } >>"$STATE/install.log" 2>&1 || {
        tail -n 30 "$STATE/install.log" >&2
        die "installing ${missing[*]} failed (full log: $STATE/install.log)"
    }
}

ensure_mail_user() {
    id -u "$MAIL_USER" >/dev/null 2>&1 ||
        useradd --system --user-group --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin "$MAIL_USER"
}

# --------------------------------------------------------------- configure

make_cert() {
    # One self-signed cert for IMAPS and STARTTLS; it is its own CA (TG_CA_CERT).
    # CA:FALSE because rustls/webpki rejects a CA:TRUE cert used as the
    # server's own (CaUsedAsEndEntity); OpenSSL accepts it either way.
    install -d -m 0755 "$TLS"
    if openssl x509 -in "$TLS/cert.pem" -noout -checkend 86400 >/dev/null 2>&1 && [[ -s $TLS/key.pem ]]; then
        return 0
    fi
    (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
        -keyout "$TLS/key.pem" -out "$TLS/cert.pem.tmp" -days 3650 -subj /CN=localhost \
        -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -addext basicConstraints=critical,CA:FALSE \
        -addext keyUsage=critical,digitalSignature \
        -addext extendedKeyUsage=serverAuth) >>"$STATE/start.log" 2>&1
    chmod 0644 "$TLS/cert.pem.tmp"
    mv "$TLS/cert.pem.tmp" "$TLS/cert.pem"
}

write_dovecot_conf() {
    local uid gid
    uid=$(id -u "$MAIL_USER") gid=$(id -g "$MAIL_USER")
    install -d -m 0755 "$DC" "$DC/state"
    cat >"$DC_CONF" <<EOF
# Generated by tests/servers/mailservers.sh on every start: do not edit.
# Stand-alone: nothing from /etc/dovecot is included.
instance_name = ticketgate-test
hostname = mail.ticketgate.test
base_dir = $DC_RUN
state_dir = $DC/state
log_path = $DC_LOG
protocols = imap lmtp
listen = 127.0.0.1
# Each imap process shows its user, so a test can stop the one serving it.
verbose_proctitle = yes

ssl = yes
ssl_cert = <$TLS/cert.pem
ssl_key = <$TLS/key.pem
ssl_dh = </usr/share/dovecot/dh.pem
# Loopback tests log in with plain passwords on the non-TLS port too.
disable_plaintext_auth = no
auth_mechanisms = plain login
# Answer failed logins quickly (default: 2 s each; see also the auth
# penalty in do_start).
auth_failure_delay = 0

# Any user name (the full address) with password '$PASSWORD' exists; each
# address gets its own Maildir, created on first login or delivery.
passdb {
  driver = static
  args = password=$PASSWORD
}
userdb {
  driver = static
  args = uid=$uid gid=$gid home=$MAIL/%d/%n allow_all_users=yes
}
mail_location = maildir:~/Maildir
# Test mail need not survive a power cut; skipping fsync makes APPEND and
# delivery faster.
mail_fsync = never
mail_uid = $uid
mail_gid = $gid
first_valid_uid = $uid
last_valid_uid = $uid
first_valid_gid = $gid
last_valid_gid = $gid

namespace inbox {
  inbox = yes
  mailbox Drafts {
    special_use = \\Drafts
  }
  mailbox Junk {
    special_use = \\Junk
  }
  mailbox Trash {
    special_use = \\Trash
  }
  mailbox Sent {
    special_use = \\Sent
  }
}

# support+tag@example.com is delivered to support@example.com's INBOX.
recipient_delimiter = +
lmtp_save_to_detail_mailbox = no

protocol imap {
  # Tests open many connections as one user from one IP (default: 10).
  mail_max_userip_connections = 200
}

service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = $LMTP_PORT
  }
}
service auth {
  # SASL for Postfix's smtpd (AUTH PLAIN/LOGIN on the submission port).
  unix_listener auth-postfix {
    mode = 0660
    user = postfix
    group = postfix
  }
}
EOF
}

# The same Dovecot set-up without MOVE and UIDPLUS (and without LMTP and
# the SASL socket, which the main instance provides), for the fall-backs.
write_dovecot_basic_conf() {
    sed -e "s|^instance_name = .*|instance_name = ticketgate-test-basic|" \
        -e "s|^base_dir = .*|base_dir = $DCB_RUN|" \
        -e "s|^state_dir = .*|state_dir = $DC/state-basic|" \
        -e "s|^protocols = .*|protocols = imap|" \
        -e "s|port = $IMAP_PORT\$|port = $IMAP_BASIC_PORT|" \
        -e "s|port = $IMAPS_PORT\$|port = 0|" \
        "$DC_CONF" | awk '
            /^service lmtp \{/ { skip = 1 }
            /^service auth \{/ { skip = 1 }
            skip && /^\}/ { skip = 0; next }
            !skip' >"$DCB_CONF"
    install -d -m 0755 "$DC/state-basic"
    cat >>"$DCB_CONF" <<EOF
protocol imap {
  imap_capability = IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE LIST-EXTENDED I18NLEVEL=1 ESEARCH ESORT SEARCHRES WITHIN CONTEXT=SEARCH LIST-STATUS BINARY SPECIAL-USE LITERAL+
}
EOF
}

write_postfix_conf() {
    install -d -m 0755 "$PF" "$PF_CONF" "$PF_QUEUE"
    cat >"$PF_CONF/main.cf" <<EOF
# Generated by tests/servers/mailservers.sh on every start: do not edit.
# Postfix's built-in level is 0: without this it uses legacy defaults and
# logs "using backwards-compatible default setting" for each one it applies.
compatibility_level = 3.6
queue_directory = $PF_QUEUE
data_directory = $PF/data
maillog_file = $PF_LOG
maillog_file_prefixes = $PF
mail_owner = postfix
setgid_group = postdrop

myhostname = mail.ticketgate.test
mydomain = ticketgate.test
myorigin = \$myhostname
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
smtpd_banner = \$myhostname ESMTP ticketgate test server
biff = no
append_dot_mydomain = no
# Dovecot 2.3's LMTP does not offer SMTPUTF8, so with "yes" Postfix bounces
# (5.6.7) every message whose client said SMTPUTF8 and whose headers contain
# UTF-8. With "no", 8-bit UTF-8 headers are delivered as they are.
smtputf8_enable = no

# No local delivery at all: mydestination must not list the virtual domains
# (Postfix warns about and mishandles a domain listed in both).
mydestination =
local_recipient_maps =
local_transport = error:5.1.1 local delivery is disabled
alias_maps =
alias_database =

# Every local part of these domains goes to Dovecot over LMTP; an empty
# virtual_mailbox_maps makes every address valid.
virtual_mailbox_domains = $DOMAINS
virtual_mailbox_maps =
virtual_transport = lmtp:inet:127.0.0.1:$LMTP_PORT
recipient_delimiter = +

# Nothing may leave the machine: no relaying at all (even with AUTH), and
# no transport that could connect outwards.
relay_domains =
smtpd_relay_restrictions = reject_unauth_destination
default_transport = error:5.7.1 this test server delivers only to its own domains
relay_transport = \$default_transport

# Optional STARTTLS with the self-signed cert; optional AUTH via Dovecot.
smtpd_tls_security_level = may
smtpd_tls_cert_file = $TLS/cert.pem
smtpd_tls_key_file = $TLS/key.pem
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = $DC_RUN/auth-postfix

# Retry quickly: a test that stops Dovecot sees deferred mail delivered soon.
queue_run_delay = 1s
minimal_backoff_time = 1s
maximal_backoff_time = 10s
EOF
    cat >"$PF_CONF/master.cf" <<EOF
# Generated by tests/servers/mailservers.sh on every start: do not edit.
# No chroot (it would need copies of /etc files in the queue directory), and
# no smtp/relay/local/virtual transports: delivery is LMTP into Dovecot only.
# service  type  private unpriv  chroot  wakeup  maxproc command + args
127.0.0.1:$SMTP_PORT inet n - n - - smtpd
# Permanent-failure port: every RCPT TO gets a 550.
127.0.0.1:$SMTP_REJECT_PORT inet n - n - - smtpd
  -o syslog_name=postfix/reject
  -o smtpd_sasl_auth_enable=no
  -o { smtpd_recipient_restrictions = check_recipient_access static:{550 5.1.1 Recipient rejected by the ticketgate test reject port} }
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n -  0 cleanup
qmgr       unix  n - n 300 1 qmgr
tlsmgr     unix  - - n 1000? 1 tlsmgr
rewrite    unix  - - n -  - trivial-rewrite
bounce     unix  - - n -  0 bounce
defer      unix  - - n -  0 bounce
trace      unix  - - n -  0 bounce
verify     unix  - - n -  1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n -  - proxymap
proxywrite unix  - - n -  1 proxymap
showq      unix  n - n -  - showq
error      unix  - - n -  - error
retry      unix  - - n -  - error
discard    unix  - - n -  - discard
lmtp       unix  - - n -  - lmtp
anvil      unix  - - n -  1 anvil
scache     unix  - - n -  1 scache
postlog    unix-dgram n - n - 1 postlogd
EOF
    # Postfix sleeps until main.cf is over a second old before reading it
    # (guards against half-written files): backdate ours to save ~2 s.
    touch -d '-1 minute' "$PF_CONF/main.cf" "$PF_CONF/master.cf"
}

# ------------------------------------------------------------------ start

wait_for_ports() {
    local p deadline=$((SECONDS + START_TIMEOUT))
    for p in $PORTS; do
        until port_open "$p"; do
            if ((SECONDS >= deadline)); then
                log_tails >&2
                die "port 127.0.0.1:$p did not accept connections within ${START_TIMEOUT}s"
            fi
            sleep 0.05
        done
    done
}

env_lines() {
    cat <<EOF
TG_MAIL_HOST=127.0.0.1
TG_IMAP_PORT=$IMAP_PORT
TG_IMAPS_PORT=$IMAPS_PORT
TG_IMAP_BASIC_PORT=$IMAP_BASIC_PORT
TG_LMTP_PORT=$LMTP_PORT
TG_SMTP_PORT=$SMTP_PORT
TG_SMTP_REJECT_PORT=$SMTP_REJECT_PORT
TG_CA_CERT=$TLS/cert.pem
TG_MAIL_PASSWORD=$PASSWORD
EOF
}

do_start() {
    local p fp running=0
    # Reuse a healthy instance started by this same script with the same
    # settings; otherwise restart from scratch (mail in STATE_DIR/mail stays).
    fp=$( { sha256sum <"${BASH_SOURCE[0]}"; env_lines; } | sha256sum | cut -c1-64)
    if dovecot_pid >/dev/null && dovecot_pid "$DCB_RUN" "$DCB_CONF" >/dev/null && postfix_pid >/dev/null && [[ -r $FINGERPRINT && $(<"$FINGERPRINT") == "$fp" ]]; then
        running=1
        for p in $PORTS; do port_open "$p" || running=0; done
    fi
    if ((!running)); then
        do_stop
        : >"$STATE/start.log"
        trap 'echo "mailservers: start failed; stopping what was started" >&2; do_stop' EXIT
        for p in $PORTS; do
            if port_open "$p"; then
                ss -ltnp "sport = :$p" >&2 || true
                die "port 127.0.0.1:$p is already in use (override with TG_*_PORT)"
            fi
        done
        install_packages
        ensure_mail_user
        # Unix socket paths are limited to 108 bytes; Dovecot's are base_dir/NAME.
        ((${#DC_RUN} <= 80)) || die "STATE_DIR path too long for Dovecot's sockets: $STATE"
        # Mail processes run as $MAIL_USER and must reach STATE_DIR/mail.
        chmod a+x "$STATE"
        setpriv --reuid="$MAIL_USER" --regid="$MAIL_USER" --clear-groups test -x "$STATE" ||
            die "$MAIL_USER cannot traverse $STATE: every parent directory needs o+x"
        install -d -m 0700 -o "$MAIL_USER" -g "$MAIL_USER" "$MAIL"
        make_cert
        write_dovecot_conf
        write_dovecot_basic_conf
        write_postfix_conf
        # postfix start's integrity checks (find over the queue and install
        # dirs) take ~2 s; once they have created the queue they add nothing.
        [[ -d $PF_QUEUE/public ]] && touch "$PF_QUEUE/quick-start"
        # 9>&-: the daemons must not inherit (and so hold) the lock.
        dovecot -c "$DC_CONF" >>"$STATE/start.log" 2>&1 9>&- || { log_tails >&2; die "dovecot failed to start"; }
        # Dovecot delays every login from an IP with recent failures by up to
        # 15 s ("auth penalty"); all tests come from 127.0.0.1. The auth
        # process (started on the first login) skips the penalty if this
        # socket is missing; no setting turns it off in 2.3.
        rm -f "$DC_RUN/anvil-auth-penalty"
        dovecot -c "$DCB_CONF" >>"$STATE/start.log" 2>&1 9>&- || { log_tails >&2; die "dovecot (basic) failed to start"; }
        rm -f "$DCB_RUN/anvil-auth-penalty"
        postfix -c "$PF_CONF" start >>"$STATE/start.log" 2>&1 9>&- || { log_tails >&2; die "postfix failed to start"; }
        wait_for_ports
        echo "$fp" >"$FINGERPRINT"
        trap - EXIT
    fi
    env_lines >"$ENV_FILE"
    sed 's/^/export /' "$ENV_FILE"
}

do_status() {
    local pid p rc=0
    if pid=$(dovecot_pid); then echo "dovecot: running (pid $pid)"; else echo "dovecot: stopped"; rc=3; fi
    if pid=$(dovecot_pid "$DCB_RUN" "$DCB_CONF"); then echo "dovecot (basic): running (pid $pid)"; else echo "dovecot (basic): stopped"; rc=3; fi
    if pid=$(postfix_pid); then echo "postfix: running (pid $pid)"; else echo "postfix: stopped"; rc=3; fi
    if ((rc == 0)); then
        for p in $(sed -n 's/^TG_[A-Z_]*PORT=//p' "$ENV_FILE" 2>/dev/null); do
            if port_open "$p"; then echo "127.0.0.1:$p: open"; else echo "127.0.0.1:$p: closed"; rc=1; fi
        done
    fi
    return $rc
}

# Test binaries may call start (or stop) at the same time: one at a time.
if [[ $CMD != status ]]; then
    exec 9>"$STATE/.lock"
    flock -w 60 9 || die "another $0 holds $STATE/.lock for over 60 s"
fi

case $CMD in
    start) do_start ;;
    stop) do_stop ;;
    status) do_status ;;
esac
