#!/usr/bin/env bash
# Build the Debian package and test it as an admin would meet it:
#   1. scripts/build-deb.sh: one release build, `generate-docs` (man pages,
#      completions, the packaged config), `cargo deb --no-build`;
#   2. `dpkg -i` on this machine (root; the service is never started);
#   3. files, owners and modes; the user and group; `config check` on the
#      installed config (as root and as the daemon's user); `learn` as root
#      leaves a store the daemon's user owns; `systemd-analyze verify` on
#      the unit where it works; the man pages render;
#   4. `dpkg --purge` removes the user, the state and the files.
# The purge runs on every exit, failure included. Run from .ci/run (CI is a
# throwaway machine); on a machine where malspam-milter is already
# installed it refuses, so it never purges a real installation.
#
# Usage: scripts/deb-test.sh            (as root)
#        DEB_TEST_BUILD=no scripts/deb-test.sh   reuse target/debian/*.deb
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'deb-test: %s\n' "$*"; }
fail() { printf 'deb-test: FAIL: %s\n' "$*" >&2; exit 1; }

[[ $(id -u) -eq 0 ]] || fail "must run as root (it installs the package)"
if dpkg-query -W -f='${Status}' malspam-milter 2>/dev/null | grep -q installed; then
    fail "malspam-milter is already installed here; this test installs and purges it, refusing"
fi
command -v cargo-deb >/dev/null || fail "cargo-deb is not installed (cargo install cargo-deb --locked)"

target=${CARGO_TARGET_DIR:-target}
if [[ ${DEB_TEST_BUILD:-yes} != no ]]; then
    say "building (release): scripts/build-deb.sh"
    scripts/build-deb.sh
fi
debs=("$target"/debian/malspam-milter_*.deb)
deb=${debs[0]}
[[ -f $deb ]] || fail "no package under $target/debian"
say "package: $deb"

# Never let the package start a service here (deb-systemd-invoke and
# invoke-rc.d obey policy-rc.d); the unit is also built with start = false.
made_policy=no
purge() {
    status=$?
    say "purging"
    dpkg --purge malspam-milter >/dev/null 2>&1 || true
    [[ $made_policy == yes ]] && rm -f /usr/sbin/policy-rc.d
    exit $status
}
trap purge EXIT
if [[ ! -e /usr/sbin/policy-rc.d ]]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    made_policy=yes
fi

say "dpkg -i"
out=$(dpkg -i "$deb" 2>&1) || { printf '%s\n' "$out"; fail "dpkg -i failed"; }
printf '%s\n' "$out" | sed 's/^/    /'
grep -q 'smtpd_milters = unix:malspam-milter/milter.sock' <<<"$out" \
    || fail "postinst did not print the main.cf lines"

# owner:group mode of a path
check() {
    local path=$1 want=$2
    [[ -e $path ]] || fail "$path is missing"
    local got
    got=$(stat -c '%U:%G %a' "$path")
    [[ $got == "$want" ]] || fail "$path is $got, expected $want"
    say "ok $path $got"
}
getent passwd malspam-milter >/dev/null || fail "no user malspam-milter"
getent group malspam-milter >/dev/null || fail "no group malspam-milter"
[[ $(getent passwd malspam-milter | cut -d: -f7) == /usr/sbin/nologin ]] || fail "the user has a login shell"
check /usr/bin/malspam-milter "root:root 755"
check /etc/malspam-milter/malspam-milter.toml "root:malspam-milter 640"
check /etc/default/malspam-milter "root:root 600"
check /var/lib/malspam-milter "malspam-milter:malspam-milter 750"
check /var/spool/postfix/malspam-milter "malspam-milter:malspam-milter 750"
unit=$(dpkg -L malspam-milter | grep -m1 '/malspam-milter\.service$' || true)
[[ -n $unit ]] || fail "no systemd unit in the package"
check "$unit" "root:root 644"
for page in man8/malspam-milter.8 man8/malspam-milter-check.8 man8/malspam-milter-quarantine-list.8 man5/malspam-milter.toml.5; do
    check "/usr/share/man/$page.gz" "root:root 644"
done
check /usr/share/bash-completion/completions/malspam-milter "root:root 644"
check /usr/share/zsh/vendor-completions/_malspam-milter "root:root 644"
check /usr/share/fish/vendor_completions.d/malspam-milter.fish "root:root 644"
if getent passwd postfix >/dev/null; then
    id -nG postfix | tr ' ' '\n' | grep -qx malspam-milter || fail "postfix is not in group malspam-milter"
    say "ok postfix is in group malspam-milter"
fi
dpkg-query -W -f='${Conffiles}\n' malspam-milter | grep -q /etc/malspam-milter/malspam-milter.toml \
    || fail "the config is not a conffile"

say "config check (default config path)"
cc=$(malspam-milter config check) || fail "config check failed on the installed config"
grep -q '^# effective configuration (from /etc/malspam-milter/malspam-milter.toml)' <<<"$cc" \
    || fail "config check did not read /etc/malspam-milter/malspam-milter.toml"
grep -q '^# state store: embedded, /var/lib/malspam-milter/state.sqlite3' <<<"$cc" \
    || fail "config check did not print the packaged store path"
grep -q 'listen = "unix:/var/spool/postfix/malspam-milter/milter.sock"' <<<"$cc" \
    || fail "the packaged config does not listen on the packaged socket"
setpriv --reuid=malspam-milter --regid=malspam-milter --init-groups \
    malspam-milter config check >/dev/null || fail "the daemon's user cannot read its config"
if setpriv --reuid=nobody --regid=nogroup --clear-groups cat /etc/malspam-milter/malspam-milter.toml >/dev/null 2>&1; then
    fail "the config is readable by others"
fi

say "learn as root into the daemon's store"
malspam-milter learn samples/ >/dev/null || fail "learn failed"
[[ -f /var/lib/malspam-milter/state.sqlite3 ]] || fail "learn wrote no store"
for f in /var/lib/malspam-milter/*; do
    [[ $(stat -c %U "$f") == malspam-milter ]] || fail "$f is not the daemon's"
done
setpriv --reuid=malspam-milter --regid=malspam-milter --init-groups \
    malspam-milter outbound status >/dev/null || fail "the daemon's user cannot open the store learn wrote"
verdict=$(malspam-milter check samples/macro-invoice.eml 2>/dev/null) || fail "check on the installed package"
grep -q '^samples/macro-invoice.eml: quarantine score' <<<"$verdict" || fail "check: $verdict"

if command -v systemd-analyze >/dev/null; then
    # `verify` needs the binary named by ExecStart and the users; it also
    # reports other units' problems on some hosts, so only our unit's
    # lines count.
    if va=$(systemd-analyze verify "$unit" 2>&1); then
        say "ok systemd-analyze verify $unit"
    elif grep -q 'malspam-milter' <<<"$va"; then
        printf '%s\n' "$va" >&2
        fail "systemd-analyze verify rejects the unit"
    else
        say "systemd-analyze verify failed for reasons outside the unit (no systemd here?):"
        printf '%s\n' "$va" | sed 's/^/    /'
    fi
else
    say "systemd-analyze not available: unit not verified"
fi

if command -v man >/dev/null; then
    warnings=$(MANWIDTH=80 man --warnings -l /usr/share/man/man8/malspam-milter.8.gz 2>&1 >/dev/null || true)
    [[ -z $warnings ]] || fail "man warns: $warnings"
    say "ok man malspam-milter renders"
fi

say "purge"
trap - EXIT
dpkg --purge malspam-milter >/dev/null
[[ $made_policy == yes ]] && rm -f /usr/sbin/policy-rc.d
! getent passwd malspam-milter >/dev/null || fail "purge left the user"
! getent group malspam-milter >/dev/null || fail "purge left the group"
for gone in /usr/bin/malspam-milter /etc/malspam-milter /var/lib/malspam-milter \
    /var/spool/postfix/malspam-milter "$unit" /usr/share/man/man8/malspam-milter.8.gz; do
    [[ ! -e $gone ]] || fail "purge left $gone"
done
say "ok purge removed the user, group, state and files"
say "PASS"
