#!/usr/bin/env bash
# Makes a throwaway PKI for the TLS tests in DIR with Debian's openssl, the way the
# README's "Securing ckptd" does it (nothing here is ever committed):
#
#   ca.crt ca.key               the test CA
#   server.crt server.key       ckptd: CN ckptd, SANs localhost and 127.0.0.1
#   server2.crt server2.key     its replacement for rotation: SANs ckptd-rotated.test, 127.0.0.1
#   client.crt client.key       a worker: CN etl-node-7, SAN etl-node-7.example.com
#   stranger.crt stranger.key   signed by the CA, but no principal's name (CN stranger)
#   other-ca.crt other-client.crt other-client.key
#                               another CA, and a client CN etl-node-7 it signed
#   expired.crt expired.key     CN etl-node-7 from the CA, valid only in January 2020
#
# Usage: make_test_pki.sh DIR
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"

new_key_and_csr() {  # NAME CN
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -subj "/CN=$2" -keyout "$1.key" -out "$1.csr" 2>/dev/null
}

self_signed_ca() {  # NAME CN
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=$2" -keyout "$1.key" -out "$1.crt" 2>/dev/null
}

sign() {  # NAME CA EXTENSIONS
  printf '%b\n' "$3" >"$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.crt" -CAkey "$2.key" -CAcreateserial -days 2 \
    -extfile "$1.ext" -out "$1.crt" 2>/dev/null
}

self_signed_ca ca "ckpt test CA"
new_key_and_csr server ckptd
sign server ca "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth"
new_key_and_csr server2 ckptd-rotated
sign server2 ca "subjectAltName=DNS:ckptd-rotated.test,IP:127.0.0.1\nextendedKeyUsage=serverAuth"
new_key_and_csr client etl-node-7
sign client ca "subjectAltName=DNS:etl-node-7.example.com\nextendedKeyUsage=clientAuth"
new_key_and_csr stranger stranger
sign stranger ca "extendedKeyUsage=clientAuth"
self_signed_ca other-ca "another CA"
new_key_and_csr other-client etl-node-7
sign other-client other-ca "subjectAltName=DNS:etl-node-7.example.com\nextendedKeyUsage=clientAuth"

# `openssl x509` cannot date a certificate in the past; `openssl ca` can.
new_key_and_csr expired etl-node-7
mkdir -p ca-db
: >ca-db/index.txt
echo 1000 >ca-db/serial
cat >ca-db/ca.cnf <<'EOF_CNF'
[ca]
default_ca = test_ca
[test_ca]
database = ca-db/index.txt
new_certs_dir = ca-db
serial = ca-db/serial
certificate = ca.crt
private_key = ca.key
default_md = sha256
policy = any_name
x509_extensions = client
[any_name]
commonName = supplied
[client]
extendedKeyUsage = clientAuth
EOF_CNF
openssl ca -batch -notext -config ca-db/ca.cnf -in expired.csr -out expired.crt \
  -startdate 20200101000000Z -enddate 20200102000000Z 2>/dev/null
chmod 600 ./*.key
