#!/usr/bin/env bash
# Deploy the whole stack to the local systemd test container `wsnotify-local`, creating it (and
# everything this machine needs) first when missing, then print where to connect.
# Ansible reaches the container over SSH (127.0.0.1:2222, a project-local key, pipelining and a
# persistent master connection): a module call costs far less than over `podman exec`.
#   scripts/deploy-local.sh [extra ansible-playbook args]
#   WSNOTIFY_LOCAL_RECREATE=1 scripts/deploy-local.sh   start from a bare container
#   WSNOTIFY_LOCAL_{HTTPS,HTTP,SSH}_PORT=...            other host ports (127.0.0.1 only)
set -euo pipefail
source "$(dirname "$0")/lib.sh"
require_root
bash scripts/setup.sh

NAME=wsnotify-local
HTTPS_PORT=${WSNOTIFY_LOCAL_HTTPS_PORT:-8443}
HTTP_PORT=${WSNOTIFY_LOCAL_HTTP_PORT:-8080}
# inventories/local/hosts.yml reads the same variable, so ansible-playbook alone follows it.
SSH_PORT=${WSNOTIFY_LOCAL_SSH_PORT:-2222}
SECRETS=inventories/local/group_vars/all/secrets.yml
# The deploy key and the master connections' sockets; the inventory names the same paths.
SSH_DIR="$CACHE/ssh"
SSH_KEY="$SSH_DIR/id_ed25519"

command -v ssh-keygen >/dev/null && command -v ssh >/dev/null \
  || die "ssh and ssh-keygen are missing: apt-get install openssh-client, then re-run"
mkdir -p "$SSH_DIR" && chmod 700 "$SSH_DIR"
if [ ! -f "$SSH_KEY" ]; then
  say "generating the local deploy key $SSH_KEY (git-ignored, this machine only)"
  ssh-keygen -q -t ed25519 -N '' -C "wsnotify-local deploy key" -f "$SSH_KEY"
fi
chmod 600 "$SSH_KEY"

# Same options as the inventory, so the master connection opened here is the one Ansible reuses.
ssh_local() {
  ssh -i "$SSH_KEY" -p "$SSH_PORT" -o BatchMode=yes -o IdentitiesOnly=yes -o ConnectTimeout=3 \
    -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
    -o ControlMaster=auto -o ControlPersist=60s -o "ControlPath=$SSH_DIR/%r@%h:%p" \
    root@127.0.0.1 "$@"
}
# A master connection outlives its container by up to 60 s: close it with the container.
remove_container() {
  ssh_local -O exit >/dev/null 2>&1 || true
  podman rm -f -t 5 "$NAME" >/dev/null 2>&1 || true
}

hold_containers_lock
IMAGE=$(bash scripts/image.sh)
# A container made before SSH access (or with other ports) cannot be reached as the inventory
# says; nothing in it outlives a deploy, so it is replaced rather than patched.
want_ports=$(printf '%s\n' "127.0.0.1:$SSH_PORT->22/tcp" "127.0.0.1:$HTTPS_PORT->443/tcp" \
  "127.0.0.1:$HTTP_PORT->80/tcp" | sort)
if [ "${WSNOTIFY_LOCAL_RECREATE:-0}" = 1 ]; then
  remove_container
elif podman container exists "$NAME"; then
  have_ports=$(podman inspect -f \
    '{{range $p, $b := .HostConfig.PortBindings}}{{range $b}}{{.HostIP}}:{{.HostPort}}->{{$p}}{{"\n"}}{{end}}{{end}}' \
    "$NAME" | sed '/^$/d' | sort)
  if [ "$have_ports" != "$want_ports" ]; then
    say "container $NAME publishes [$(echo $have_ports)], this deploy needs [$(echo $want_ports)]" \
      "(it predates SSH access, or a port was overridden): recreating it; it holds nothing a deploy does not recreate"
    remove_container
  fi
fi
if ! podman container exists "$NAME"; then
  say "creating container $NAME from $IMAGE (https on 127.0.0.1:$HTTPS_PORT, ssh on 127.0.0.1:$SSH_PORT)"
  # Its own download cache: apt locks the directory, and Molecule's containers running at the
  # same time share theirs (a shared one failed this deploy: "Could not get lock"). Seeded with
  # hard links to what they already fetched (apt moves only complete .debs there).
  mkdir -p "$CACHE/apt-archives" "$CACHE/apt-archives-local/partial"
  find "$CACHE/apt-archives" -maxdepth 1 -name '*.deb' -exec cp -l -n -t "$CACHE/apt-archives-local" {} +
  # 8>&-: the container's conmon outlives this script and would hold the machine-wide lock
  # (descriptor 8, see lib.sh) for as long as the container runs, blocking every other run.
  podman run -d --name "$NAME" --hostname "$NAME" --systemd=always \
    -p "127.0.0.1:$HTTPS_PORT:443" -p "127.0.0.1:$HTTP_PORT:80" -p "127.0.0.1:$SSH_PORT:22" \
    -v "$CACHE/apt-archives-local:/var/cache/apt/archives" \
    "$IMAGE" /sbin/init >/dev/null 8>&-
fi
[ "$(podman inspect -f '{{.State.Running}}' "$NAME")" = true ] || podman start "$NAME" >/dev/null 8>&-
podman exec "$NAME" systemctl is-system-running --wait >/dev/null 2>&1 || true

# Root logs in with this key only (Debian's default: PermitRootLogin prohibit-password). Written
# on every run, so a regenerated key is picked up; the file belongs to this script.
podman exec -i "$NAME" sh -c 'umask 077 && mkdir -p /root/.ssh && cat >/root/.ssh/authorized_keys' \
  <"$SSH_KEY.pub"
for i in $(seq 1 30); do
  err=$(ssh_local true 2>&1) && break
  [ "$i" -lt 30 ] || die "sshd in $NAME does not answer on 127.0.0.1:$SSH_PORT after 30 tries: $err" \
    "(see: podman exec $NAME journalctl -u ssh; or recreate: WSNOTIFY_LOCAL_RECREATE=1 $0)"
  sleep 1
done

if [ ! -f "$SECRETS" ]; then
  say "generating local secrets into $SECRETS (git-ignored)"
  umask 077
  python3 - "$SECRETS" <<'PY'
import secrets, sys
names = ["postgresql_db_password", "redis_password", "wsnotify_jwt_secret", "wsnotify_publish_token"]
with open(sys.argv[1], "w") as f:
    f.write("---\n# Generated by scripts/deploy-local.sh for the local test container only.\n")
    for n in names:
        f.write(f"{n}: {secrets.token_hex(24)}\n")
PY
fi

start=$(date +%s.%N)
ansible-playbook playbooks/site.yml "$@"
# bench/deploy_timings.py reads this line: the playbook's own time, without set-up or lock waits.
say "deployed to $NAME in $(awk -v s="$start" -v e="$(date +%s.%N)" 'BEGIN { printf "%.1f", e - s }') s"
cat <<MSG

The stack runs in the container $NAME (the verification summary is printed above):
  WebSocket:    wss://127.0.0.1:$HTTPS_PORT/ws          (self-signed certificate for localhost and 127.0.0.1)
  API:          https://127.0.0.1:$HTTPS_PORT/api/user/notifications
  certificate:  podman exec $NAME cat /etc/nginx/tls/wsnotify.crt > wsnotify.crt
  test token:   podman exec $NAME systemd-run --quiet --pipe --wait -p EnvironmentFile=/etc/wsnotify/wsnotify.env \\
                  -p User=wsnotify /opt/wsnotify/current/venv/bin/wsnotify token --user 42
  publish:      same, with: wsnotify publish --user 42 --title hello
  verify again: make verify        shell: ssh -p $SSH_PORT -i .cache/ssh/id_ed25519 root@127.0.0.1
MSG
