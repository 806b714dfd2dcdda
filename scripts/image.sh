#!/usr/bin/env bash
# Build the Debian systemd base image that every test container and the local deploy target run,
# unless an image built from this exact recipe already exists. The tag is a hash of this file and
# the suite, so editing the recipe is what triggers a rebuild. Prints the image reference last.
#   scripts/image.sh [SUITE]     trixie (Debian 13, the default) or bookworm (Debian 12)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_root

SUITE=${1:-$DEFAULT_SUITE}
IMAGE_REPO=$(image_repo "$SUITE")

MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
SECURITY_MIRROR=${DEBIAN_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
# What a freshly installed Debian server has, plus what systemd inside a container needs.
# python3-apt and ca-certificates are on any real Debian server; having them saves each converge
# from installing them. openssh-server: the local deploy target is reached over SSH like a real
# server (a module call costs far less than over `podman exec`); containers that are not given an
# authorized key (Molecule's, reached with the podman connection) just run an idle sshd.
INCLUDE=systemd,systemd-sysv,dbus,iproute2,python3,python3-apt,ca-certificates,procps,openssh-server

tag=$( { sed -n '/^MIRROR=/,$p' "$0"; echo "$MIRROR $SUITE"; } | sha256sum | cut -c1-12)
IMAGE="$IMAGE_REPO:$tag"

if podman image exists "$IMAGE"; then
  echo "$IMAGE"
  exit 0
fi
# Several scripts (deploy, Molecule runs) may ask for a missing image at once: one builds, the
# others wait for it and then find it.
mkdir -p "$CACHE"
exec 9>"$CACHE/image.lock"
flock 9
if podman image exists "$IMAGE"; then
  echo "$IMAGE"
  exit 0
fi

say "building $IMAGE (Debian $SUITE) with debootstrap (about a minute, once per recipe)" >&2
start=$(date +%s)
root=$(mktemp -d "$CACHE/rootfs.XXXXXX")
trap 'rm -rf "$root"' EXIT
log="$CACHE/debootstrap-$SUITE.log"
debootstrap --variant=minbase --include="$INCLUDE" "$SUITE" "$root" "$MIRROR" >"$log" 2>&1 \
  || die "debootstrap of $SUITE failed (see $log); is $MIRROR reachable?"
# deb822 sources, as a Debian 13 install writes them (Debian 12's APT reads them too).
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<SRC
Types: deb
URIs: $MIRROR
Suites: $SUITE $SUITE-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $SECURITY_MIRROR
Suites: $SUITE-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
# Keep the image small and let containers start clean; machine-id is made on first boot.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*
# No package lists yet. Ansible's apt module judges their age by this stamp (else by the mtime
# of lists/, which opening the cache can refresh — seen here as an intermittent "No package
# matching 'redis-server'"): an ancient stamp makes the first apt task update, and apt touches
# it after every successful update, as Ubuntu does, so cache_valid_time works from then on.
mkdir -p "$root/var/lib/apt/periodic"
touch -d @0 "$root/var/lib/apt/periodic/update-success-stamp"
cat >"$root/etc/apt/apt.conf.d/15update-stamp" <<'APT'
APT::Update::Post-Invoke-Success {"touch /var/lib/apt/periodic/update-success-stamp 2>/dev/null || true";};
APT
: >"$root/etc/machine-id"
# Consoles are absent in a container; these units would only fail.
for u in getty@tty1.service systemd-logind.service; do
  ln -sf /dev/null "$root/etc/systemd/system/$u"
done
# openssh-server's postinst made host keys in the chroot: every container would share them.
# Each container makes its own at its first start instead, before Debian's `sshd -t` (which fails
# without a host key). Only ed25519: made in milliseconds, where RSA-3072 held up each container's
# boot (Molecule's too) by ~2 s here; sshd is told to load just that one.
rm -f "$root"/etc/ssh/ssh_host_*
echo "HostKey /etc/ssh/ssh_host_ed25519_key" >"$root/etc/ssh/sshd_config.d/host-key.conf"
mkdir -p "$root/etc/systemd/system/ssh.service.d"
cat >"$root/etc/systemd/system/ssh.service.d/host-key.conf" <<'UNIT'
[Service]
ExecStartPre=
ExecStartPre=/bin/sh -c 'test -s /etc/ssh/ssh_host_ed25519_key || exec ssh-keygen -q -t ed25519 -N "" -f /etc/ssh/ssh_host_ed25519_key'
ExecStartPre=/usr/sbin/sshd -t
UNIT
tar -C "$root" -c . | podman import \
  --change 'CMD ["/sbin/init"]' --change 'ENV container=podman' --change 'STOPSIGNAL SIGRTMIN+3' \
  -q - "$IMAGE" >/dev/null
# Older builds of the recipe are dead weight.
podman images --format '{{.Repository}}:{{.Tag}}' | grep "^$IMAGE_REPO:" | grep -v ":$tag\$" \
  | xargs -r podman rmi >/dev/null 2>&1 || true
say "built $IMAGE in $(( $(date +%s) - start )) s" >&2
echo "$IMAGE"
