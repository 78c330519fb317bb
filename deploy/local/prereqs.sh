#!/usr/bin/env bash
# Installs the system tools the local stack needs (Java 17+, Maven, curl, Alertmanager, PostgreSQL, nginx)
# when missing and this machine can install them (root + apt). Elsewhere it only says what is missing.
set -euo pipefail

missing=()
java_ok() {
  command -v java >/dev/null 2>&1 || return 1
  local v
  v=$(java -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
  [ "${v%%.*}" -ge 17 ] 2>/dev/null
}
java_ok || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
command -v curl >/dev/null 2>&1 || missing+=(curl)
command -v prometheus-alertmanager >/dev/null 2>&1 || command -v alertmanager >/dev/null 2>&1 \
  || missing+=(prometheus-alertmanager)
ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || missing+=(postgresql)
command -v nginx >/dev/null 2>&1 || missing+=(nginx-light)  # the registry gateway
command -v unzip >/dev/null 2>&1 || missing+=(unzip)  # Keycloak's distribution

[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "prereqs: installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
else
  echo "prereqs: missing ${missing[*]}; install them (Java 17 or newer, Apache Maven, curl, Alertmanager, PostgreSQL, nginx) and retry" >&2
  exit 1
fi
