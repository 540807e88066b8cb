#!/usr/bin/env bash
# Run a real single-node Apache Kafka 4.x broker (KRaft, combined broker+controller)
# from Maven Central artifacts, with the machine's Java 17+. No Docker, no tarballs.
#
#   scripts/kafka.sh fetch            resolve the jars into the cache (once; later runs are instant)
#   scripts/kafka.sh start            format storage once, start in the background, wait until ready
#   scripts/kafka.sh stop             SIGTERM, wait up to 30s, then SIGKILL
#   scripts/kafka.sh status           exit 0 if running and answering, 1 if not
#   scripts/kafka.sh reset            stop and delete the state dir (fresh cluster next start)
#   scripts/kafka.sh logs [-f]        last lines of the broker log (-f to follow)
#   scripts/kafka.sh tool CLASS ARGS  run a Kafka CLI main class (kafka-tools classpath), e.g.
#       scripts/kafka.sh tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:9092 --list
#   scripts/kafka.sh env              print the effective settings
#
# Env knobs:
#   KAFKA_VERSION          (default 4.4.0)   org.apache.kafka:kafka_2.13 version
#   KAFKA_TOOLS_VERSION    (default = KAFKA_VERSION, falling back to 4.3.1 / 4.2.0 when that
#                           kafka-tools release is not on Maven Central; CLI tools only, not the broker)
#   KAFKA_PORT             (default 9092)    PLAINTEXT listener on 127.0.0.1
#   KAFKA_CONTROLLER_PORT  (default KAFKA_PORT+1, i.e. 9093)
#   KAFKA_SSL_PORT         (default unset)   also listen with TLS on this port; a test CA and
#                                            the broker's certificate are made once in
#                                            <state>/tls (clients trust <state>/tls/ca.pem)
#   KAFKA_SASL_PORT        (default unset)   also listen with SASL_SSL (SCRAM-SHA-512, user
#                                            "hookline", password "hookline-test-secret",
#                                            created when the storage is formatted); needs
#                                            KAFKA_SSL_PORT
#   KAFKA_HEAP_OPTS        (default "-Xmx1g -Xms512m")
#   KAFKA_OPTS             extra JVM options for the broker
#   KAFKA_START_TIMEOUT    (default 90)      seconds to wait for readiness
#   HOOKLINE_CACHE_DIR     (default <repo>/.cache)
#   KAFKA_STATE_DIR        (default $HOOKLINE_CACHE_DIR/kafka-state/<port>)
#   KAFKA_LOG_LINES        (default 100)     lines shown by `logs`
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_DIR="$(cd "$SCRIPT_DIR/.." && pwd)"

KAFKA_VERSION="${KAFKA_VERSION:-4.4.0}"
KAFKA_TOOLS_VERSION="${KAFKA_TOOLS_VERSION:-}"
LOG4J_VERSION="${KAFKA_LOG4J_VERSION:-2.24.3}"
DEP_PLUGIN="org.apache.maven.plugins:maven-dependency-plugin:3.6.1"
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-$((KAFKA_PORT + 1))}"
KAFKA_SSL_PORT="${KAFKA_SSL_PORT:-}"
KAFKA_SASL_PORT="${KAFKA_SASL_PORT:-}"
SCRAM_USER=hookline
SCRAM_PASSWORD=hookline-test-secret
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1g -Xms512m}"
KAFKA_OPTS="${KAFKA_OPTS:-}"
START_TIMEOUT="${KAFKA_START_TIMEOUT:-90}"
HOST=127.0.0.1

abs_path() { if [[ "$1" == /* ]]; then echo "$1"; else echo "$PWD/$1"; fi; }
CACHE_DIR="$(abs_path "${HOOKLINE_CACHE_DIR:-$REPO_DIR/.cache}")"
M2_DIR="$CACHE_DIR/m2"
VERSION_DIR="$CACHE_DIR/kafka/$KAFKA_VERSION"
LIBS_DIR="$VERSION_DIR/libs"
TOOLS_LIBS_DIR="$VERSION_DIR/tools-libs"
FETCH_MARKER="$VERSION_DIR/.fetched"
CACHE_LAYOUT=2   # bump to force a re-fetch when the cache layout changes
STATE_DIR="$(abs_path "${KAFKA_STATE_DIR:-$CACHE_DIR/kafka-state/$KAFKA_PORT}")"
DATA_DIR="$STATE_DIR/data"
LOG_DIR="$STATE_DIR/logs"
CONF_DIR="$STATE_DIR/config"
PID_FILE="$STATE_DIR/kafka.pid"
SERVER_LOG="$LOG_DIR/server.log"
CONSOLE_LOG="$LOG_DIR/kafka.out"

BROKER_MAIN=kafka.Kafka
STORAGE_MAIN=kafka.tools.StorageTool
PROBE_MAIN=HooklineKafkaProbe

say() { echo "kafka: $*" >&2; }
die() { echo "kafka: error: $*" >&2; exit 1; }

need_java() {
  command -v java >/dev/null 2>&1 || die "java not found on PATH (Kafka 4.x needs Java 17+)"
  local major
  major="$(java -version 2>&1 | sed -nE '1s/.*version "([0-9]+).*/\1/p')"
  [[ -n "$major" && "$major" -ge 17 ]] || die "Kafka 4.x broker needs Java 17+, found: $(java -version 2>&1 | head -n1)"
}

# Serialise concurrent invocations on one lock file (fetch per cache, start/stop per state dir).
# The held fd is recorded in HELD_LOCK_FD so the broker launch can close it: a long-lived child
# must not inherit the lock, or the next stop/start would wait forever.
HELD_LOCK_FD=""
with_lock() {
  local lockfile="$1"; shift
  mkdir -p "$(dirname "$lockfile")"
  if ! command -v flock >/dev/null 2>&1; then
    "$@"
    return
  fi
  local fd outer="$HELD_LOCK_FD"
  exec {fd}>"$lockfile"
  flock -w 600 "$fd" || die "timed out waiting for lock $lockfile"
  HELD_LOCK_FD="$fd"
  "$@"
  exec {fd}>&-
  HELD_LOCK_FD="$outer"
}

now_ms() { date +%s%3N; }
since() { local d=$(( $(now_ms) - $1 )); printf '%d.%ds' $((d / 1000)) $(((d % 1000) / 100)); }

# ---------------------------------------------------------------------------------------------
# fetch
# ---------------------------------------------------------------------------------------------
dep_xml() { echo "<dependency><groupId>$1</groupId><artifactId>$2</artifactId><version>$3</version></dependency>"; }

broker_deps() {
  # kafka_2.13 first so that, at equal depth, its versions of the shared modules win.
  local a
  for a in kafka_2.13 kafka-server kafka-storage kafka-clients; do dep_xml org.apache.kafka "$a" "$KAFKA_VERSION"; done
}

# resolve_into OUT_DIR DEPS_XML: copy-dependencies (runtime scope) of a throwaway pom, plus log4j2 as the
# slf4j backend, into OUT_DIR. Returns maven's exit code; its output is in $VERSION_DIR/mvn.log.
resolve_into() {
  local out="$1" deps="$2" binding=log4j-slf4j-impl rc=0
  rm -rf "$out"
  _mvn_copy "$out" "$deps" "$binding" || return $?
  # Kafka 4.x uses slf4j-api 1.7 (binding log4j-slf4j-impl, as in Kafka's own libs/). Should a
  # release move to slf4j 2.x, the binding must be log4j-slf4j2-impl: redo the copy with it.
  if compgen -G "$out/slf4j-api-2.*.jar" >/dev/null; then
    binding=log4j-slf4j2-impl
    rm -rf "$out"
    _mvn_copy "$out" "$deps" "$binding" || rc=$?
  fi
  return $rc
}

_mvn_copy() {
  local out="$1" deps="$2" binding="$3" work rc=0
  work="$(mktemp -d "$VERSION_DIR/.pom.XXXXXX")"
  cat >"$work/pom.xml" <<EOF
<?xml version="1.0" encoding="UTF-8"?>
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>hookline.local</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
$deps
$(dep_xml org.apache.logging.log4j log4j-api "$LOG4J_VERSION")
$(dep_xml org.apache.logging.log4j log4j-core "$LOG4J_VERSION")
$(dep_xml org.apache.logging.log4j "$binding" "$LOG4J_VERSION")
  </dependencies>
</project>
EOF
  (cd "$work" && mvn -q -B -f pom.xml -Dmaven.repo.local="$M2_DIR" \
      "$DEP_PLUGIN:copy-dependencies" -DincludeScope=runtime -DoutputDirectory="$out") \
      >"$VERSION_DIR/mvn.log" 2>&1 || rc=$?
  rm -rf "$work"
  return $rc
}

tools_missing_in_log() { grep -q "org.apache.kafka:kafka-tools:jar:$1" "$VERSION_DIR/mvn.log" 2>/dev/null; }

mvn_fail() {
  tail -n 30 "$VERSION_DIR/mvn.log" >&2 || true
  die "$1 (full maven log: $VERSION_DIR/mvn.log)"
}

do_fetch() {
  if [[ -d "$LIBS_DIR" ]] && grep -qx "layout=$CACHE_LAYOUT" "$FETCH_MARKER" 2>/dev/null; then
    return 0
  fi
  command -v mvn >/dev/null 2>&1 || die "mvn not found on PATH (needed once to fetch Kafka from Maven Central)"
  mkdir -p "$VERSION_DIR" "$M2_DIR"
  say "fetching $KAFKA_VERSION (org.apache.kafka:kafka_2.13 + runtime deps, kafka-tools, log4j2) into $VERSION_DIR ..."
  local t0 tv tools_version="" tools_dir="" candidates=()
  t0=$(now_ms)
  rm -rf "$TOOLS_LIBS_DIR"

  # 1) Like Kafka's own distribution: broker + kafka-tools of the same version in one libs/ dir.
  if [[ -z "$KAFKA_TOOLS_VERSION" || "$KAFKA_TOOLS_VERSION" == "$KAFKA_VERSION" ]]; then
    if resolve_into "$LIBS_DIR.tmp" "$(broker_deps; dep_xml org.apache.kafka kafka-tools "$KAFKA_VERSION")"; then
      tools_version="$KAFKA_VERSION"; tools_dir=libs
    elif tools_missing_in_log "$KAFKA_VERSION"; then
      say "note: org.apache.kafka:kafka-tools:$KAFKA_VERSION is not on Maven Central; CLI classes will come from an older kafka-tools on a separate classpath"
    else
      mvn_fail "maven could not resolve Kafka $KAFKA_VERSION"
    fi
  fi

  # 2) Otherwise: broker alone in libs/, and a self-consistent kafka-tools closure in tools-libs/
  #    (the CLI tools are plain clients; a 4.3 kafka-tools jar next to 4.4 kafka-clients breaks).
  if [[ -z "$tools_dir" ]]; then
    resolve_into "$LIBS_DIR.tmp" "$(broker_deps)" || mvn_fail "maven could not resolve Kafka $KAFKA_VERSION"
    if [[ -n "$KAFKA_TOOLS_VERSION" && "$KAFKA_TOOLS_VERSION" != "$KAFKA_VERSION" ]]; then
      candidates=("$KAFKA_TOOLS_VERSION")
    else
      for tv in 4.3.1 4.2.0; do
        if [[ "$tv" != "$KAFKA_VERSION" ]]; then candidates+=("$tv"); fi
      done
    fi
    for tv in "${candidates[@]}"; do
      if resolve_into "$TOOLS_LIBS_DIR.tmp" "$(dep_xml org.apache.kafka kafka-tools "$tv")"; then
        tools_version="$tv"; tools_dir=tools-libs
        mv "$TOOLS_LIBS_DIR.tmp" "$TOOLS_LIBS_DIR"
        break
      elif ! tools_missing_in_log "$tv"; then
        mvn_fail "maven could not resolve org.apache.kafka:kafka-tools:$tv"
      fi
    done
    if [[ -z "$tools_dir" ]]; then
      say "warning: no org.apache.kafka:kafka-tools found; the broker works but CLI classes (TopicCommand, console producer/consumer) are missing"
    else
      say "note: CLI classes: kafka-tools $tools_version in $TOOLS_LIBS_DIR; broker: $KAFKA_VERSION in $LIBS_DIR"
    fi
  fi

  [[ -f "$LIBS_DIR.tmp/kafka_2.13-$KAFKA_VERSION.jar" && -f "$LIBS_DIR.tmp/kafka-clients-$KAFKA_VERSION.jar" ]] \
    || die "resolution did not produce kafka_2.13-$KAFKA_VERSION.jar / kafka-clients-$KAFKA_VERSION.jar"
  rm -rf "$LIBS_DIR"
  mv "$LIBS_DIR.tmp" "$LIBS_DIR"
  {
    echo "kafka_version=$KAFKA_VERSION"
    echo "kafka_tools_version=${tools_version:-none}"
    echo "tools_dir=${tools_dir:-none}"
    echo "log4j_version=$LOG4J_VERSION"
    echo "fetched_at=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "layout=$CACHE_LAYOUT"
  } >"$FETCH_MARKER"
  local extra=""
  if [[ "$tools_dir" == tools-libs ]]; then extra=" + $(ls "$TOOLS_LIBS_DIR" | wc -l) tool jars"; fi
  say "fetched $(ls "$LIBS_DIR" | wc -l) broker jars$extra ($(du -sh "$VERSION_DIR" | cut -f1)) in $(since "$t0")"
}

# Classpath dir for the CLI tools (libs/ itself when kafka-tools of the broker's version exists).
tools_cp_dir() {
  if [[ "$(sed -n 's/^tools_dir=//p' "$FETCH_MARKER" 2>/dev/null)" == tools-libs && -d "$TOOLS_LIBS_DIR" ]]; then
    echo "$TOOLS_LIBS_DIR"
  else
    echo "$LIBS_DIR"
  fi
}

fetch() { with_lock "$CACHE_DIR/kafka/.fetch.lock" do_fetch; }

# ---------------------------------------------------------------------------------------------
# support files: tool logging config and the readiness probe (compiled once per source hash)
# ---------------------------------------------------------------------------------------------
TOOLS_LOG4J="$VERSION_DIR/tools-log4j2.properties"

write_tools_log4j() {
  [[ -f "$TOOLS_LOG4J" ]] && return 0
  cat >"$TOOLS_LOG4J.tmp" <<'EOF'
# Logging for CLI tools run by scripts/kafka.sh: warnings and errors to stderr only.
status = error
name = kafka-tools
appender.stderr.type = Console
appender.stderr.name = STDERR
appender.stderr.target = SYSTEM_ERR
appender.stderr.layout.type = PatternLayout
appender.stderr.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = STDERR
# connection-refused chatter while the broker is still starting
logger.netclient.name = org.apache.kafka.clients.NetworkClient
logger.netclient.level = error
logger.adminmeta.name = org.apache.kafka.clients.admin.internals
logger.adminmeta.level = error
EOF
  mv "$TOOLS_LOG4J.tmp" "$TOOLS_LOG4J"
}

probe_source() {
  cat <<'EOF'
import java.util.Collection;
import java.util.Properties;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.DescribeClusterOptions;
import org.apache.kafka.clients.admin.DescribeClusterResult;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.common.Node;

/** Waits until a broker answers DescribeCluster + Metadata (ListTopics). Exit 0 ready, 1 timeout, 2 broker died. */
public class HooklineKafkaProbe {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        long deadline = System.nanoTime() + (long) (Double.parseDouble(args[1]) * 1e9);
        long pid = args.length > 2 ? Long.parseLong(args[2]) : -1L;
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        p.put("client.id", "hookline-kafka-probe");
        p.put("request.timeout.ms", "3000");
        p.put("default.api.timeout.ms", "4000");
        p.put("reconnect.backoff.ms", "100");
        p.put("reconnect.backoff.max.ms", "500");
        p.put("retry.backoff.ms", "100");
        p.put("retry.backoff.max.ms", "500");
        String last = "no attempt";
        try (Admin admin = Admin.create(p)) {
            while (true) {
                if (pid > 0 && !ProcessHandle.of(pid).map(ProcessHandle::isAlive).orElse(false)) {
                    System.err.println("broker process " + pid + " exited");
                    System.exit(2);
                }
                try {
                    DescribeClusterResult r = admin.describeCluster(new DescribeClusterOptions().timeoutMs(3000));
                    Collection<Node> nodes = r.nodes().get();
                    String clusterId = r.clusterId().get();
                    int topics = admin.listTopics(new ListTopicsOptions().listInternal(true).timeoutMs(3000)).names().get().size();
                    if (!nodes.isEmpty()) {
                        System.out.println("cluster=" + clusterId + " brokers=" + nodes.size() + " topics=" + topics);
                        System.exit(0);
                    }
                    last = "no live brokers in metadata yet";
                } catch (Exception e) {
                    last = String.valueOf(e.getCause() != null ? e.getCause() : e);
                }
                if (System.nanoTime() > deadline) {
                    System.err.println("not ready: " + last);
                    System.exit(1);
                }
                Thread.sleep(250);
            }
        }
    }
}
EOF
}

PROBE_DIR=""
ensure_probe() {
  local hash
  hash="$(probe_source | sha1sum | cut -c1-12)"
  PROBE_DIR="$VERSION_DIR/probe-$hash"
  [[ -f "$PROBE_DIR/$PROBE_MAIN.class" ]] && return 0
  local tmp
  tmp="$(mktemp -d "$VERSION_DIR/.probe.XXXXXX")"
  if ! command -v javac >/dev/null 2>&1; then
    # A JRE only: wait_ready falls back to polling with kafka-tools' BrokerApiVersionsCommand.
    rm -rf "$tmp"
    PROBE_DIR=""
    return 0
  fi
  probe_source >"$tmp/$PROBE_MAIN.java"
  javac -nowarn -d "$tmp" -cp "$LIBS_DIR/*" "$tmp/$PROBE_MAIN.java" >&2 || die "could not compile the readiness probe"
  rm -f "$tmp/$PROBE_MAIN.java"
  rm -rf "$PROBE_DIR"
  mv "$tmp" "$PROBE_DIR"
}

# wait_ready TIMEOUT_S PID: prints a short description and returns 0 once the broker answers
# metadata requests; 1 on timeout, 2 if PID died. The compiled probe keeps one JVM polling; without
# javac it polls with kafka-tools' BrokerApiVersionsCommand (one JVM per attempt).
wait_ready() {
  local timeout="$1" pid="$2" rc=0
  if [[ -n "$PROBE_DIR" ]]; then
    run_java "$LIBS_DIR/*:$PROBE_DIR" "$PROBE_MAIN" "$HOST:$KAFKA_PORT" "$timeout" "$pid" 2>"$LOG_DIR/probe.err" || rc=$?
    return $rc
  fi
  local tools deadline cc="$STATE_DIR/config/probe-client.properties"
  tools="$(tools_cp_dir)"
  compgen -G "$tools/kafka-tools-*.jar" >/dev/null \
    || die "cannot check readiness: no javac (install a JDK 17) and no kafka-tools jar in $tools"
  printf 'request.timeout.ms=2000\ndefault.api.timeout.ms=3000\nreconnect.backoff.max.ms=500\n' >"$cc"
  deadline=$(( $(now_ms) + timeout * 1000 ))
  while :; do
    if ! kill -0 "$pid" 2>/dev/null; then echo "broker process $pid exited" >"$LOG_DIR/probe.err"; return 2; fi
    if run_java "$tools/*" org.apache.kafka.tools.BrokerApiVersionsCommand \
         --bootstrap-server "$HOST:$KAFKA_PORT" --command-config "$cc" >"$LOG_DIR/probe.out" 2>"$LOG_DIR/probe.err"; then
      echo "BrokerApiVersionsCommand: $(head -n 1 "$LOG_DIR/probe.out" | cut -d'>' -f1 | sed 's/ -$//')"
      return 0
    fi
    if (( $(now_ms) > deadline )); then echo "timed out" >>"$LOG_DIR/probe.err"; return 1; fi
    sleep 0.5
  done
}

# run_java CLASSPATH MAIN ARGS...: a short-lived JVM (tools, storage format, probe) with quiet logging.
run_java() {
  local cp="$1" main="$2"; shift 2
  java -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
    -Dlog4j2.configurationFile="$TOOLS_LOG4J" -cp "$cp" "$main" "$@"
}

# ---------------------------------------------------------------------------------------------
# broker process helpers
# ---------------------------------------------------------------------------------------------
read_pid() {
  [[ -f "$PID_FILE" ]] || return 1
  local pid
  pid="$(tr -dc '0-9' <"$PID_FILE")"
  [[ -n "$pid" ]] || return 1
  echo "$pid"
}

# True if $1 is alive and is *our* broker (guards against PID reuse).
is_our_broker() {
  local pid="$1"
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    local cmd
    cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
    [[ "$cmd" == *"$BROKER_MAIN"* && "$cmd" == *"$CONF_DIR/server.properties"* ]] || return 1
  fi
  return 0
}

running_pid() {
  local pid
  pid="$(read_pid)" || return 1
  if is_our_broker "$pid"; then echo "$pid"; return 0; fi
  return 1
}

port_open() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }

write_log4j_config() {
  cat >"$CONF_DIR/log4j2.properties" <<'EOF'
# Broker logging written by scripts/kafka.sh (same layout as Kafka's config/log4j2.yaml, one file).
status = error
name = kafka-broker
property.logPattern = [%d] %p %m (%c)%n

appender.server.type = RollingFile
appender.server.name = ServerLog
appender.server.fileName = ${sys:kafka.logs.dir}/server.log
appender.server.filePattern = ${sys:kafka.logs.dir}/server.log.%i
appender.server.layout.type = PatternLayout
appender.server.layout.pattern = ${logPattern}
appender.server.policies.type = Policies
appender.server.policies.size.type = SizeBasedTriggeringPolicy
appender.server.policies.size.size = 50MB
appender.server.strategy.type = DefaultRolloverStrategy
appender.server.strategy.max = 3

rootLogger.level = info
rootLogger.appenderRef.server.ref = ServerLog

# noisy loggers
logger.request.name = kafka.request.logger
logger.request.level = warn
logger.requestchannel.name = kafka.network.RequestChannel$
logger.requestchannel.level = warn
logger.statechange.name = state.change.logger
logger.statechange.level = warn
logger.cleaner.name = org.apache.kafka.storage.internals.log.LogCleaner
logger.cleaner.level = warn
logger.authorizer.name = kafka.authorizer.logger
logger.authorizer.level = warn
logger.netclient.name = org.apache.kafka.clients.NetworkClient
logger.netclient.level = warn
logger.config.name = org.apache.kafka.common.config.AbstractConfig
logger.config.level = warn
EOF
}

# A CA and a broker certificate for 127.0.0.1 (scripts/test-ca.sh), made once per state dir.
make_tls_material() {
  bash "$SCRIPT_DIR/test-ca.sh" "$STATE_DIR/tls" || die "making the TLS material failed"
}

write_server_properties() {
  local listeners="PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT"
  local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT" tls=""
  if [[ -n "$KAFKA_SSL_PORT" ]]; then
    make_tls_material
    listeners="$listeners,SSL://$HOST:$KAFKA_SSL_PORT"
    protocols="$protocols,SSL:SSL"
    tls="ssl.keystore.type=PEM
ssl.keystore.location=$STATE_DIR/tls/server-bundle.pem
ssl.client.auth=none"
  fi
  if [[ -n "$KAFKA_SASL_PORT" ]]; then
    [[ -n "$KAFKA_SSL_PORT" ]] || die "KAFKA_SASL_PORT needs KAFKA_SSL_PORT (SASL_SSL uses the same certificate)"
    listeners="$listeners,SASL_SSL://$HOST:$KAFKA_SASL_PORT"
    protocols="$protocols,SASL_SSL:SASL_SSL"
    tls="$tls
sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;"
  fi
  cat >"$CONF_DIR/server.properties" <<EOF
# Written by scripts/kafka.sh: single-node KRaft (combined broker + controller) for local tests.
process.roles=broker,controller
node.id=1
controller.quorum.bootstrap.servers=$HOST:$KAFKA_CONTROLLER_PORT
listeners=$listeners
advertised.listeners=$listeners
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
$tls

log.dirs=$DATA_DIR
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
delete.topic.enable=true

# internal topics: one replica, few partitions (fast first consumer group / transaction)
offsets.topic.replication.factor=1
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0

# small box (2 cores), tests run beside it
num.network.threads=2
num.io.threads=4
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=104857600
EOF
}

new_cluster_id() {
  # Same format as org.apache.kafka.common.Uuid (16 random bytes, base64url, no padding), not starting with '-'.
  local id
  while :; do
    id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
    [[ "$id" != -* && ${#id} -eq 22 ]] && { echo "$id"; return; }
  done
}

format_storage_if_needed() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local cid
  cid="$(new_cluster_id)"
  say "formatting storage in $DATA_DIR (cluster id $cid, standalone KRaft quorum)"
  # The SCRAM user of the SASL_SSL listener lives in the cluster metadata, written here.
  if ! run_java "$LIBS_DIR/*" "$STORAGE_MAIN" format --standalone --cluster-id "$cid" \
        --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]" \
        --config "$CONF_DIR/server.properties" >"$LOG_DIR/format.log" 2>&1; then
    cat "$LOG_DIR/format.log" >&2
    die "storage format failed"
  fi
  echo "$KAFKA_CONTROLLER_PORT" >"$STATE_DIR/controller.port"
  touch "$STATE_DIR/scram-user"
}

print_failure_logs() {
  say "---- last lines of $SERVER_LOG ----"
  tail -n 40 "$SERVER_LOG" >&2 2>/dev/null || true
  if [[ -s "$CONSOLE_LOG" ]]; then
    say "---- last lines of $CONSOLE_LOG ----"
    tail -n 20 "$CONSOLE_LOG" >&2 || true
  fi
}

kill_and_wait() {
  local pid="$1" waited=0
  kill -TERM "$pid" 2>/dev/null || return 0
  while kill -0 "$pid" 2>/dev/null; do
    if (( waited >= 300 )); then
      say "pid $pid still alive after 30s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
}

# ---------------------------------------------------------------------------------------------
# start / stop / status
# ---------------------------------------------------------------------------------------------
do_start() {
  local t0 pid started=0 probe_out rc
  t0=$(now_ms)
  need_java
  fetch
  write_tools_log4j
  ensure_probe
  mkdir -p "$DATA_DIR" "$LOG_DIR" "$CONF_DIR"

  if pid="$(running_pid)"; then
    say "already running (pid $pid), checking 127.0.0.1:$KAFKA_PORT ..."
  else
    rm -f "$PID_FILE"
    if [[ -f "$STATE_DIR/controller.port" && "$(cat "$STATE_DIR/controller.port")" != "$KAFKA_CONTROLLER_PORT" ]]; then
      die "state dir $STATE_DIR was formatted for controller port $(cat "$STATE_DIR/controller.port"), not $KAFKA_CONTROLLER_PORT; run '$0 reset' first"
    fi
    local p
    if [[ -n "$KAFKA_SASL_PORT" && -f "$DATA_DIR/meta.properties" && ! -f "$STATE_DIR/scram-user" ]]; then
      die "state dir $STATE_DIR was formatted without the SCRAM user KAFKA_SASL_PORT needs; run '$0 reset' first"
    fi
    for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT" $KAFKA_SSL_PORT $KAFKA_SASL_PORT; do
      port_open "$p" && die "port $HOST:$p is already in use by another process (set KAFKA_PORT / KAFKA_CONTROLLER_PORT)"
    done
    write_server_properties
    write_log4j_config
    format_storage_if_needed
    say "starting Kafka $KAFKA_VERSION on $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT, state $STATE_DIR)"
    # Same JVM flags as Kafka's bin/kafka-run-class.sh (KAFKA_JVM_PERFORMANCE_OPTS), smaller heap.
    (
      if [[ -n "$HELD_LOCK_FD" ]]; then exec {HELD_LOCK_FD}>&-; fi
      # shellcheck disable=SC2086
      exec nohup java $KAFKA_HEAP_OPTS \
        -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -XX:MaxInlineLevel=15 -Djava.awt.headless=true \
        -Dkafka.logs.dir="$LOG_DIR" \
        -Dlog4j2.configurationFile="$CONF_DIR/log4j2.properties" \
        $KAFKA_OPTS \
        -cp "$LIBS_DIR/*" "$BROKER_MAIN" "$CONF_DIR/server.properties" \
        >"$CONSOLE_LOG" 2>&1 </dev/null
    ) &
    pid=$!
    echo "$pid" >"$PID_FILE"
    started=1
  fi

  local remaining=$(( START_TIMEOUT - ($(now_ms) - t0) / 1000 ))
  (( remaining < 5 )) && remaining=5
  rc=0
  probe_out="$(wait_ready "$remaining" "$pid")" || rc=$?
  if (( rc != 0 )); then
    if (( rc == 2 )); then
      say "broker process $pid exited during startup"
    else
      say "broker not ready after ${START_TIMEOUT}s: $(grep -v '^\s' "$LOG_DIR/probe.err" 2>/dev/null | tail -n 1)"
    fi
    print_failure_logs
    if (( started )); then
      kill_and_wait "$pid"
      rm -f "$PID_FILE"
    fi
    exit 1
  fi
  say "ready on $HOST:$KAFKA_PORT (pid $pid) in $(since "$t0") [$probe_out]"
  if [[ -n "$KAFKA_SSL_PORT" ]]; then
    grep -q "SSL://$HOST:$KAFKA_SSL_PORT" "$CONF_DIR/server.properties" \
      || die "the running broker has no TLS listener on $KAFKA_SSL_PORT (started without KAFKA_SSL_PORT); stop it first"
    say "TLS on $HOST:$KAFKA_SSL_PORT (CA $STATE_DIR/tls/ca.pem)"
  fi
  if [[ -n "$KAFKA_SASL_PORT" ]]; then
    grep -q "SASL_SSL://$HOST:$KAFKA_SASL_PORT" "$CONF_DIR/server.properties" \
      || die "the running broker has no SASL_SSL listener on $KAFKA_SASL_PORT (started without KAFKA_SASL_PORT); stop it first"
    say "SASL_SSL (SCRAM-SHA-512, user $SCRAM_USER) on $HOST:$KAFKA_SASL_PORT"
  fi
}

do_stop() {
  local pid
  if ! pid="$(read_pid)"; then
    say "not running (no pidfile)"
    return 0
  fi
  if ! is_our_broker "$pid"; then
    say "not running (stale pidfile for pid $pid removed)"
    rm -f "$PID_FILE"
    return 0
  fi
  local t0
  t0=$(now_ms)
  say "stopping pid $pid ..."
  kill_and_wait "$pid"
  rm -f "$PID_FILE"
  say "stopped in $(since "$t0")"
}

do_status() {
  local pid
  if pid="$(running_pid)"; then
    if port_open "$KAFKA_PORT"; then
      say "running on $HOST:$KAFKA_PORT (pid $pid, version $KAFKA_VERSION, state $STATE_DIR)"
      return 0
    fi
    say "process $pid is alive but $HOST:$KAFKA_PORT is not accepting connections (starting or stuck)"
    return 1
  fi
  say "not running ($HOST:$KAFKA_PORT)"
  return 1
}

do_reset() {
  do_stop
  [[ -n "$STATE_DIR" && "$STATE_DIR" != "/" && "$STATE_DIR" != "$REPO_DIR" && "$STATE_DIR" != "$CACHE_DIR" ]] \
    || die "refusing to delete suspicious state dir '$STATE_DIR'"
  rm -rf "$STATE_DIR"
  say "state dir $STATE_DIR deleted (next start formats a fresh cluster)"
}

do_logs() {
  [[ -f "$SERVER_LOG" ]] || die "no log yet at $SERVER_LOG"
  if [[ "${1:-}" == "-f" ]]; then
    exec tail -n 50 -F "$SERVER_LOG"
  fi
  tail -n "${KAFKA_LOG_LINES:-100}" "$SERVER_LOG"
}

do_tool() {
  [[ $# -ge 1 ]] || die "usage: $0 tool MAIN_CLASS [args...]"
  need_java
  fetch
  write_tools_log4j
  local main="$1"; shift
  run_java "$(tools_cp_dir)/*" "$main" "$@"
}

do_env() {
  cat <<EOF
KAFKA_VERSION=$KAFKA_VERSION
KAFKA_PORT=$KAFKA_PORT
KAFKA_CONTROLLER_PORT=$KAFKA_CONTROLLER_PORT
KAFKA_HEAP_OPTS=$KAFKA_HEAP_OPTS
HOOKLINE_CACHE_DIR=$CACHE_DIR
KAFKA_STATE_DIR=$STATE_DIR
KAFKA_LIBS=$LIBS_DIR
KAFKA_BOOTSTRAP_SERVERS=$HOST:$KAFKA_PORT
EOF
}

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  fetch)  need_java; fetch; write_tools_log4j; ensure_probe ;;
  start)  with_lock "$STATE_DIR.lck" do_start ;;
  stop)   with_lock "$STATE_DIR.lck" do_stop ;;
  status) do_status ;;
  reset)  with_lock "$STATE_DIR.lck" do_reset ;;
  logs)   do_logs "$@" ;;
  tool)   do_tool "$@" ;;
  env)    do_env ;;
  -h|--help|help) usage ;;
  *) usage; exit 2 ;;
esac
