#!/usr/bin/env bash
# Makes a throw-away CA and a server certificate for 127.0.0.1 it signed, for tests and
# load tests (the test broker's TLS listener, HTTPS sinks). Idempotent per directory.
#
#   scripts/test-ca.sh DIR
#
# Writes DIR/ca.pem (trust this), DIR/server.pem (certificate), DIR/server.key (PKCS#8 key)
# and DIR/server-bundle.pem (key, certificate and CA in one file: Kafka's PEM keystore).
# Also two client certificates the CA signed, for mTLS endpoints: DIR/client.pem and
# DIR/client.key, DIR/client2.pem and DIR/client2.key (a rotation).
set -euo pipefail
dir=${1:?usage: scripts/test-ca.sh DIR}
[ -f "$dir/server-bundle.pem" ] && [ -f "$dir/client2.pem" ] && exit 0
command -v openssl >/dev/null 2>&1 || { echo "test-ca: the openssl command is needed (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
cd "$dir"
quiet() { "$@" >/dev/null 2>&1 || { echo "test-ca: $* failed" >&2; exit 1; }; }
quiet openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=hookline-test-ca" -keyout ca.key -out ca.pem
quiet openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" -keyout server.rsa.key -out server.csr
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext
quiet openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -extfile server.ext -out server.pem
quiet openssl pkcs8 -topk8 -nocrypt -in server.rsa.key -out server.key
cat server.key server.pem ca.pem >server-bundle.pem.tmp && mv server-bundle.pem.tmp server-bundle.pem
printf 'extendedKeyUsage=clientAuth\n' >client.ext
for name in client client2; do
  quiet openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=hookline-test-$name" -keyout "$name.ec.key" -out "$name.csr"
  quiet openssl x509 -req -in "$name.csr" -CA ca.pem -CAkey ca.key -CAcreateserial -days 3650 -extfile client.ext -out "$name.pem"
  quiet openssl pkcs8 -topk8 -nocrypt -in "$name.ec.key" -out "$name.key"
done
