#!/usr/bin/env bash
# ssh ProxyCommand for test containers: runs sshd in inetd mode (-i) inside the container named
# $1 over `podman exec`, after authorizing the project-local key. Ansible then speaks ordinary
# SSH to it, with pipelining and a persistent master connection: a module call costs a fraction
# of the several `podman exec` calls the podman connection makes for each one. No port is
# published, so nothing collides between scenarios and nothing listens on this machine.
# The sessions get Debian's default umask (022), not the 077 the key is written with.
# A container makes its host key at its first boot (scripts/image.sh), and sshd needs /run/sshd,
# which only exists while ssh.service runs (its RuntimeDirectory): a connection made before that
# (with several scenarios at once, Ansible's first task can come first) waits for the key (up to
# 120 s) and makes the directory, instead of failing with kex_exchange_identification.
#   ssh -o ProxyCommand="scripts/container-sshd.sh %h" root@<container>
set -euo pipefail
source "$(dirname "$0")/lib.sh" >/dev/null
key=$(cat "$CACHE/ssh/id_ed25519.pub")
exec podman exec -i -e "WSNOTIFY_KEY=$key" "$1" sh -c \
  '(umask 077; mkdir -p /root/.ssh; printf "%s\n" "$WSNOTIFY_KEY" >/root/.ssh/authorized_keys)
   i=0
   while [ ! -s /etc/ssh/ssh_host_ed25519_key.pub ] && [ $i -lt 1200 ]; do sleep 0.1; i=$((i + 1)); done
   mkdir -p -m 0755 /run/sshd
   umask 022; exec /usr/sbin/sshd -i'
