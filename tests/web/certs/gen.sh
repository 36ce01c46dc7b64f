#!/bin/sh
# Regenerates the test certificates of tests/web (checked in: the tests and
# deploy/e2e/check_e2e.py use them as they are). Valid for 100 years; all
# names are loopback or example names. Run from anywhere:
#   sh tests/web/certs/gen.sh
set -eu
cd "$(dirname "$0")"
DAYS=36500
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The CA that signs the server and client certificates.
openssl req -x509 -newkey rsa:2048 -nodes -days "$DAYS" -sha256 \
  -keyout ca.key -out ca.crt -subj "/CN=aliyun-backup-exporter test CA" \
  -addext "basicConstraints=critical,CA:TRUE" \
  -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

# sign NAME SUBJECT EXTENSIONS: NAME.key and NAME.crt signed by the CA.
sign() {
  openssl req -newkey rsa:2048 -nodes -keyout "$1.key" -out "$tmp/$1.csr" -subj "$2" 2>/dev/null
  printf '%s\n' "$3" > "$tmp/$1.ext"
  openssl x509 -req -in "$tmp/$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial \
    -days "$DAYS" -sha256 -extfile "$tmp/$1.ext" -out "$1.crt" 2>/dev/null
}

server_ext="basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1"
# The server, and the certificate it is rotated to (same names, another key).
sign server "/CN=localhost" "$server_ext"
sign server2 "/CN=localhost rotated" "$server_ext"

# A client the CA signed, with one SAN of each kind.
sign client "/CN=prometheus" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth
subjectAltName=DNS:test3,DNS:prometheus.example,email:prometheus@example.com,URI:spiffe://example.com/prometheus,IP:127.0.0.2"

# A client no CA signed.
openssl req -x509 -newkey rsa:2048 -nodes -days "$DAYS" -sha256 \
  -keyout client_selfsigned.key -out client_selfsigned.crt -subj "/CN=selfsigned" \
  -addext "subjectAltName=DNS:selfsigned" \
  -addext "extendedKeyUsage=clientAuth" 2>/dev/null

rm -f ca.srl
