#!/bin/bash
# configure names the Debian package of a missing library and fails;
# make install DESTDIR= puts every file where the man pages say.
. "$(dirname "$0")/lib.sh"

# configure in a scratch copy, with a pkg-config that finds nothing
mkdir -p "$T/src"
cp "$TOP/configure" "$TOP/Makefile.in" "$T/src/"
printf '#!/bin/sh\n[ "$1" = --exists ] && [ "$2" = libsodium ] && exit 1\nexec pkg-config "$@"\n' >"$T/fakepc"
chmod 755 "$T/fakepc"
out=$(cd "$T/src" && PKG_CONFIG=$T/fakepc ./configure 2>&1)
[ $? = 1 ] || fail "configure without libsodium did not fail"
echo "$out" | grep -q "apt-get install libsodium-dev" || fail "configure: $out"
[ ! -e "$T/src/Makefile" ] || fail "configure wrote a Makefile anyway"
ok "configure: $(echo "$out" | tail -n 1)"

out=$(cd "$T/src" && ./configure --prefix=/usr --sysconfdir=/etc \
    --localstatedir=/var --runstatedir=/run 2>&1) || fail "configure: $out"
grep -q '#define CONF_DEFAULT_FILE "/etc/sluice/sluice.conf"' "$T/src/config.h" ||
    fail "config.h: sysconfdir"
grep -q '#define CONF_DEFAULT_PID_FILE "/run/sluice/sluiced.pid"' "$T/src/config.h" ||
    fail "config.h: runstatedir"
grep -q '#define LIBEXECDIR "/usr/libexec/sluice"' "$T/src/config.h" ||
    fail "config.h: libexecdir"
ok "configure honours --prefix, --sysconfdir, --runstatedir"

# install from the tree under test into a scratch root
make -s -C "$TOP" install BUILD="$BUILD" DESTDIR="$T/root" >"$T/install.log" 2>&1 ||
    { cat "$T/install.log"; fail "make install"; }
prefix=$(sed -n 's/^prefix = //p' "$TOP/config.mk")
sysconf=$(sed -n 's/^sysconfdir = //p' "$TOP/config.mk")
libexec=$(sed -n 's/^libexecdir = //p' "$TOP/config.mk")
for f in "$prefix/sbin/sluiced" "$libexec/sluice/smtpd" "$libexec/sluice/authd" \
    "$libexec/sluice/queued" "$libexec/sluice/deliverd" \
    "$sysconf/sluice/sluice.conf.example" \
    "$prefix/share/man/man8/sluiced.8" "$prefix/share/man/man5/sluice.conf.5" \
    "$prefix/lib/systemd/system/sluice.service" \
    "$prefix/lib/sysusers.d/sluice.conf" "$prefix/lib/tmpfiles.d/sluice.conf"; do
	[ -e "$T/root$f" ] || fail "make install: no $f"
done
grep -q "^ExecStart=$prefix/sbin/sluiced -f" "$T/root$prefix/lib/systemd/system/sluice.service" ||
    fail "unit: ExecStart"
"$T/root$prefix/sbin/sluiced" -n -c "$T/root$sysconf/sluice/sluice.conf.example" 2>/dev/null ||
    fail "installed sluiced refuses the installed example"
ok "make install DESTDIR: programs, example, man pages, units"
