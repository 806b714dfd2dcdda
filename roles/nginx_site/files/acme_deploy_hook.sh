#!/bin/sh
# certbot's deploy hook for role nginx_site (tasks/acme.yml passes it with --deploy-hook, so
# certbot runs it after the first issuance and, from the lineage's renewal configuration, after
# every renewal, certbot.timer's included). Validate before activate, like the role's own changes:
# the new certificate and key go to the paths nginx serves, nginx -t checks the whole
# configuration, and nginx reloads only when it passes; otherwise the previous pair is put back,
# nginx keeps serving it, and the hook fails with nginx's message.
#   acme-deploy-hook CERTIFICATE_PATH KEY_PATH      (certbot sets RENEWED_LINEAGE)
set -eu
cert=$1
key=$2
lineage=${RENEWED_LINEAGE:?is unset: certbot sets it when it runs this as a deploy hook}
umask 077
for f in "$cert" "$key"; do
  if [ -e "$f" ]; then cp -p "$f" "$f.acme-previous"; fi
done
install -m 0644 "$lineage/fullchain.pem" "$cert.acme-new"
install -m 0600 "$lineage/privkey.pem" "$key.acme-new"
mv -f "$cert.acme-new" "$cert"
mv -f "$key.acme-new" "$key"
if out=$(nginx -t 2>&1); then
  systemctl reload nginx
  rm -f "$cert.acme-previous" "$key.acme-previous"
  echo "nginx_site acme deploy hook: the certificate of $lineage is installed at $cert, nginx reloaded"
else
  for f in "$cert" "$key"; do
    if [ -e "$f.acme-previous" ]; then mv -f "$f.acme-previous" "$f"; fi
  done
  echo "nginx_site acme deploy hook: nginx -t rejected the certificate of $lineage, so the previous one is back at $cert and nginx keeps serving it. nginx said: $out" >&2
  exit 1
fi
