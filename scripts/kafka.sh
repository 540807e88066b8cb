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
#   scripts/kafka.sh delete-topics BOOTSTRAP PREFIX [OPTIONS]
#                                     delete every topic PREFIX.* (a harness run's own); OPTIONS go
#                                     to TopicCommand (--command-config FILE for SASL)
#   scripts/kafka.sh env              print the effective settings
#
# A replicated cluster on loopback: KAFKA_NODES=3 (every node broker + controller, a static
# 3-voter KRaft quorum; default.replication.factor=3, min.insync.replicas=2, internal topics
# RF 3 / min ISR 2). Node i listens on KAFKA_PORT+100*i (PLAINTEXT) and +1 (CONTROLLER); state
# in $HOOKLINE_CACHE_DIR/kafka-state/cluster-<KAFKA_PORT>/node<i>. The verbs above work on
# the whole cluster (`logs [N] [-f]` for one node), plus:
#   KAFKA_NODES=3 scripts/kafka.sh stop-node N     SIGTERM node N (controlled shutdown), wait
#   KAFKA_NODES=3 scripts/kafka.sh kill-node N     SIGKILL node N
#   KAFKA_NODES=3 scripts/kafka.sh start-node N    start node N, wait until it is back in the cluster
#   KAFKA_NODES=3 scripts/kafka.sh leader TOPIC P  node id of the leader of partition P
#   KAFKA_NODES=3 scripts/kafka.sh controller      node id of the active controller (quorum leader)
#   KAFKA_NODES=3 scripts/kafka.sh under-replicated   number of under-replicated partitions
# With KAFKA_CLUSTER_ACL=1 the cluster also runs the StandardAuthorizer
# (allow.everyone.if.no.acl.found=false) and a SASL_PLAINTEXT listener (SCRAM-SHA-512) on
# KAFKA_PORT+100*i+2 with two users: "admin" (password "admin-test-secret", super user) and
# "hookline" ("hookline-test-secret", only what ACLs grant); `env` names the client properties
# files for the CLI tools. The PLAINTEXT and CONTROLLER listeners stay unauthenticated super
# users (the brokers' own traffic): loopback, local use only. TLS listeners are single-node only.
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
#   KAFKA_HEAP_OPTS        (default "-Xmx1g -Xms512m"; a cluster: "-Xmx512m -Xms256m" per node)
#   KAFKA_NODES            (default 1)       3: a replicated cluster (above)
#   KAFKA_CLUSTER_ACL      (default 0)       1: the cluster with ACLs and SASL/SCRAM (above)
#   KAFKA_MIN_ISR          (default 2 in a cluster) min.insync.replicas of the cluster
#   KAFKA_OPTS             extra JVM options for the broker
#   KAFKA_START_TIMEOUT    (default 90)      seconds to wait for readiness
#   HOOKLINE_CACHE_DIR     (default <repo>/.cache)
#   KAFKA_STATE_DIR        (default $HOOKLINE_CACHE_DIR/kafka-state/<port>, a cluster: .../cluster-<port>)
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
KAFKA_NODES="${KAFKA_NODES:-1}"
[[ "$KAFKA_NODES" =~ ^[1-9]$ ]] || { echo "kafka: error: KAFKA_NODES must be 1..9, not '$KAFKA_NODES'" >&2; exit 2; }
KAFKA_CLUSTER_ACL="${KAFKA_CLUSTER_ACL:-0}"
CLUSTER_MIN_ISR="${KAFKA_MIN_ISR:-$(( KAFKA_NODES > 1 ? 2 : 1 ))}"
if (( KAFKA_NODES > 1 )); then
  KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx512m -Xms256m}"
else
  KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xmx1g -Xms512m}"
fi
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
        int minBrokers = args.length > 3 ? Integer.parseInt(args[3]) : 1;
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
                    if (nodes.size() >= minBrokers) {
                        System.out.println("cluster=" + clusterId + " brokers=" + nodes.size() + " topics=" + topics);
                        System.exit(0);
                    }
                    last = nodes.size() + " of " + minBrokers + " brokers in metadata yet";
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
  local timeout="$1" pid="$2" min_brokers="${3:-1}" rc=0
  if [[ -n "$PROBE_DIR" ]]; then
    run_java "$LIBS_DIR/*:$PROBE_DIR" "$PROBE_MAIN" "$HOST:$KAFKA_PORT" "$timeout" "$pid" "$min_brokers" 2>"$LOG_DIR/probe.err" || rc=$?
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
  node_properties "single-node KRaft (combined broker + controller) for local tests" 1 \
    "controller.quorum.bootstrap.servers=$HOST:$KAFKA_CONTROLLER_PORT" "$listeners" "$listeners" "$protocols" "$tls" 1 1 4 \
    >"$CONF_DIR/server.properties"
}

# node_properties TITLE NODE_ID QUORUM_LINE LISTENERS ADVERTISED PROTOCOLS EXTRA RF MIN_ISR IO_THREADS [MORE]:
# a combined broker + controller's server.properties (single node and cluster nodes alike).
node_properties() {
  cat <<EOF
# Written by scripts/kafka.sh: $1.
process.roles=broker,controller
node.id=$2
$3
listeners=$4
advertised.listeners=$5
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$6
$7

log.dirs=$DATA_DIR
num.partitions=1
default.replication.factor=$8
min.insync.replicas=$9
auto.create.topics.enable=false
delete.topic.enable=true

# internal topics: replicated like the others, few partitions (fast first consumer group / transaction)
offsets.topic.replication.factor=$8
offsets.topic.num.partitions=4
transaction.state.log.replication.factor=$8
transaction.state.log.min.isr=$9
transaction.state.log.num.partitions=4
share.coordinator.state.topic.replication.factor=$8
share.coordinator.state.topic.min.isr=$9
share.coordinator.state.topic.num.partitions=1
group.initial.rebalance.delay.ms=0

# small box (2 cores), tests run beside it
num.network.threads=2
num.io.threads=${10}
num.recovery.threads.per.data.dir=1
log.retention.hours=24
log.segment.bytes=104857600
${11:-}
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

# launch_broker: starts the broker of $CONF_DIR in the background; its pid goes to $PID_FILE
# and $LAUNCHED_PID. Same JVM flags as Kafka's bin/kafka-run-class.sh
# (KAFKA_JVM_PERFORMANCE_OPTS), smaller heap.
LAUNCHED_PID=""
launch_broker() {
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
  LAUNCHED_PID=$!
  echo "$LAUNCHED_PID" >"$PID_FILE"
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
    launch_broker
    pid=$LAUNCHED_PID
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

# Every topic under one prefix (a harness run's topics), through TopicCommand's regex.
do_delete_topics() {
  [[ $# -ge 2 ]] || die "usage: $0 delete-topics BOOTSTRAP PREFIX [TopicCommand options]"
  local bootstrap="$1" prefix="$2"; shift 2
  do_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$bootstrap" "$@" --delete --topic "$prefix\\..*"
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

# ---------------------------------------------------------------------------------------------
# a replicated cluster (KAFKA_NODES=3): every node broker + controller, a static 3-voter quorum
# ---------------------------------------------------------------------------------------------
# Node i (1..N) listens on KAFKA_PORT + 100*i (PLAINTEXT), +1 (CONTROLLER) and, with
# KAFKA_CLUSTER_ACL=1, +2 (SASL_PLAINTEXT, SCRAM-SHA-512); state in <cluster dir>/node<i>.
BASE_PORT="$KAFKA_PORT"
CLUSTER_DIR="$(abs_path "${KAFKA_STATE_DIR:-$CACHE_DIR/kafka-state/cluster-$BASE_PORT}")"
ADMIN_USER=admin
ADMIN_PASSWORD=admin-test-secret

node_port() { echo $(( BASE_PORT + 100 * $1 )); }

# node_env N: points the per-broker globals (ports, state dir, pid file, logs) at node N.
node_env() {
  local n="$1"
  [[ "$n" =~ ^[0-9]+$ ]] && (( n >= 1 && n <= KAFKA_NODES )) || die "node must be 1..$KAFKA_NODES, not '$n'"
  NODE="$n"
  KAFKA_PORT="$(node_port "$n")"
  KAFKA_CONTROLLER_PORT=$((KAFKA_PORT + 1))
  NODE_SASL_PORT=$((KAFKA_PORT + 2))
  STATE_DIR="$CLUSTER_DIR/node$n"
  DATA_DIR="$STATE_DIR/data"
  LOG_DIR="$STATE_DIR/logs"
  CONF_DIR="$STATE_DIR/config"
  PID_FILE="$STATE_DIR/kafka.pid"
  SERVER_LOG="$LOG_DIR/server.log"
  CONSOLE_LOG="$LOG_DIR/kafka.out"
}

cluster_bootstrap() {
  local i out=""
  for (( i = 1; i <= KAFKA_NODES; i++ )); do out="$out${out:+,}$HOST:$(node_port "$i")"; done
  echo "$out"
}

cluster_sasl_bootstrap() {
  local i out=""
  for (( i = 1; i <= KAFKA_NODES; i++ )); do out="$out${out:+,}$HOST:$(( $(node_port "$i") + 2 ))"; done
  echo "$out"
}

cluster_voters() {
  local i out=""
  for (( i = 1; i <= KAFKA_NODES; i++ )); do out="$out${out:+,}$i@$HOST:$(( $(node_port "$i") + 1 ))"; done
  echo "$out"
}

# The client properties of the SCRAM users (ACL mode), for the Kafka CLI tools.
write_client_properties() {
  local user="$1" password="$2" file="$CLUSTER_DIR/$1-client.properties"
  cat >"$file" <<PROPS
security.protocol=SASL_PLAINTEXT
sasl.mechanism=SCRAM-SHA-512
sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="$user" password="$password";
PROPS
}

write_cluster_properties() {
  local listeners="PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT"
  local advertised="PLAINTEXT://$HOST:$KAFKA_PORT"
  local protocols="CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT" acl=""
  if [[ "$KAFKA_CLUSTER_ACL" == 1 ]]; then
    listeners="$listeners,SASL_PLAINTEXT://$HOST:$NODE_SASL_PORT"
    advertised="$advertised,SASL_PLAINTEXT://$HOST:$NODE_SASL_PORT"
    protocols="$protocols,SASL_PLAINTEXT:SASL_PLAINTEXT"
    # Clients (Hookline, the admin) authenticate with SCRAM on the SASL_PLAINTEXT listener and
    # get only what ACLs grant. The PLAINTEXT and CONTROLLER listeners carry the brokers' and
    # controllers' own traffic as User:ANONYMOUS, a super user: loopback only, local use only.
    acl="sasl.enabled.mechanisms=SCRAM-SHA-512
listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:ANONYMOUS;User:$ADMIN_USER
allow.everyone.if.no.acl.found=false"
  fi
  node_properties "node $NODE of a $KAFKA_NODES-node KRaft cluster (each node broker + controller)" "$NODE" \
    "controller.quorum.voters=$(cluster_voters)" "$listeners" "$advertised" "$protocols" "$acl" \
    "$KAFKA_NODES" "$CLUSTER_MIN_ISR" 2 "unclean.leader.election.enable=false
num.replica.fetchers=1
background.threads=2

# Failure detection (Kafka's defaults, written out): a broker that stops heartbeating is fenced
# after broker.session.timeout.ms and its partitions get new leaders; a controller leader that
# stops answering loses the quorum after controller.quorum.fetch.timeout.ms plus an election.
broker.session.timeout.ms=9000
broker.heartbeat.interval.ms=2000
controller.quorum.fetch.timeout.ms=2000
controller.quorum.election.timeout.ms=1000
replica.lag.time.max.ms=30000

# Groups on KIP-848's consumer protocol (kafka.client.\"group.protocol\" = \"consumer\"): the
# session and heartbeat that Hookline's clients set themselves under the classic protocol.
group.consumer.min.session.timeout.ms=10000
group.consumer.session.timeout.ms=30000
group.consumer.min.heartbeat.interval.ms=250
group.consumer.heartbeat.interval.ms=250" >"$CONF_DIR/server.properties"
}

cluster_format_if_needed() {
  [[ -f "$DATA_DIR/meta.properties" ]] && return 0
  local cid
  cid="$(cat "$CLUSTER_DIR/cluster.id")"
  say "node $NODE: formatting storage in $DATA_DIR (cluster id $cid, voters $(cluster_voters))"
  # The SCRAM users live in the cluster metadata, written here (the same on every node).
  if ! run_java "$LIBS_DIR/*" "$STORAGE_MAIN" format --cluster-id "$cid" \
        --add-scram "SCRAM-SHA-512=[name=$ADMIN_USER,password=$ADMIN_PASSWORD]" \
        --add-scram "SCRAM-SHA-512=[name=$SCRAM_USER,password=$SCRAM_PASSWORD]" \
        --config "$CONF_DIR/server.properties" >"$LOG_DIR/format.log" 2>&1; then
    cat "$LOG_DIR/format.log" >&2
    die "node $NODE: storage format failed"
  fi
}

# Starts node $NODE's process unless it runs; sets LAUNCHED_PID (empty if it was running).
cluster_launch_node() {
  local pid p
  LAUNCHED_PID=""
  mkdir -p "$DATA_DIR" "$LOG_DIR" "$CONF_DIR"
  if pid="$(running_pid)"; then
    say "node $NODE already running (pid $pid)"
    return 0
  fi
  rm -f "$PID_FILE"
  for p in "$KAFKA_PORT" "$KAFKA_CONTROLLER_PORT"; do
    port_open "$p" && die "node $NODE: port $HOST:$p is already in use by another process (set KAFKA_PORT: node i uses KAFKA_PORT+100*i, +1, +2)"
  done
  if [[ "$KAFKA_CLUSTER_ACL" == 1 ]] && port_open "$NODE_SASL_PORT"; then
    die "node $NODE: port $HOST:$NODE_SASL_PORT is already in use by another process"
  fi
  write_cluster_properties
  write_log4j_config
  cluster_format_if_needed
  say "node $NODE: starting on $HOST:$KAFKA_PORT (controller $KAFKA_CONTROLLER_PORT$([[ "$KAFKA_CLUSTER_ACL" == 1 ]] && echo ", SASL_PLAINTEXT $NODE_SASL_PORT"))"
  launch_broker
}

# Waits for node $NODE to answer with every node of the cluster registered.
cluster_wait_node() {
  local pid="$1" timeout="$2" rc=0 out
  out="$(wait_ready "$timeout" "$pid" "$KAFKA_NODES")" || rc=$?
  if (( rc != 0 )); then
    if (( rc == 2 )); then say "node $NODE: process $pid exited during startup"
    else say "node $NODE: not ready after ${timeout}s: $(grep -v '^\s' "$LOG_DIR/probe.err" 2>/dev/null | tail -n 1)"; fi
    print_failure_logs
    return 1
  fi
  say "node $NODE ready on $HOST:$KAFKA_PORT (pid $pid) [$out]"
}

cluster_prepare() {
  need_java
  fetch
  write_tools_log4j
  ensure_probe
  mkdir -p "$CLUSTER_DIR"
  [[ -s "$CLUSTER_DIR/cluster.id" ]] || new_cluster_id >"$CLUSTER_DIR/cluster.id"
  if [[ "$KAFKA_CLUSTER_ACL" == 1 ]]; then
    write_client_properties "$ADMIN_USER" "$ADMIN_PASSWORD"
    write_client_properties "$SCRAM_USER" "$SCRAM_PASSWORD"
  fi
}

do_cluster_start() {
  local t0 i pids=() launched=() failed=0 pid
  t0=$(now_ms)
  cluster_prepare
  # Every node first (a quorum needs a majority of the voters up), then wait for each.
  for (( i = 1; i <= KAFKA_NODES; i++ )); do
    node_env "$i"
    cluster_launch_node
    if [[ -n "$LAUNCHED_PID" ]]; then pids[i]=$LAUNCHED_PID; launched[i]=1; else pids[i]="$(running_pid)"; launched[i]=0; fi
  done
  for (( i = 1; i <= KAFKA_NODES; i++ )); do
    node_env "$i"
    local remaining=$(( START_TIMEOUT - ($(now_ms) - t0) / 1000 ))
    (( remaining < 5 )) && remaining=5
    cluster_wait_node "${pids[i]}" "$remaining" || failed=1
  done
  if (( failed )); then
    for (( i = 1; i <= KAFKA_NODES; i++ )); do
      node_env "$i"
      if [[ "${launched[i]}" == 1 ]]; then kill_and_wait "${pids[i]}"; rm -f "$PID_FILE"; fi
    done
    exit 1
  fi
  say "cluster of $KAFKA_NODES ready in $(since "$t0"): bootstrap $(cluster_bootstrap)$([[ "$KAFKA_CLUSTER_ACL" == 1 ]] && echo "; SASL_PLAINTEXT (SCRAM-SHA-512, users $ADMIN_USER and $SCRAM_USER, StandardAuthorizer) $(cluster_sasl_bootstrap)")"
  for (( i = 1; i <= KAFKA_NODES; i++ )); do
    node_env "$i"
    if [[ "$KAFKA_CLUSTER_ACL" == 1 ]] && ! grep -q "SASL_PLAINTEXT://$HOST:$NODE_SASL_PORT" "$CONF_DIR/server.properties"; then
      die "node $i runs without the ACL setup (started without KAFKA_CLUSTER_ACL=1); stop the cluster first"
    fi
    if [[ "$KAFKA_CLUSTER_ACL" != 1 ]] && grep -q "^authorizer.class.name" "$CONF_DIR/server.properties"; then
      say "warning: node $i runs with the ACL setup (started with KAFKA_CLUSTER_ACL=1)"
    fi
  done
}

do_cluster_stop() {
  local i pid pids=() t0
  t0=$(now_ms)
  # SIGTERM to every node at once: one by one, the last ones would wait for a quorum that is gone.
  for (( i = 1; i <= KAFKA_NODES; i++ )); do
    node_env "$i"
    if pid="$(running_pid)"; then kill -TERM "$pid" 2>/dev/null || true; pids[i]=$pid; fi
  done
  for (( i = 1; i <= KAFKA_NODES; i++ )); do
    node_env "$i"
    if [[ -n "${pids[i]:-}" ]]; then kill_and_wait "${pids[i]}"; fi
    rm -f "$PID_FILE"
  done
  say "cluster stopped in $(since "$t0")"
}

do_node_stop() {
  node_env "$1"
  local pid t0
  t0=$(now_ms)
  if ! pid="$(running_pid)"; then say "node $NODE not running"; rm -f "$PID_FILE"; return 0; fi
  say "node $NODE: SIGTERM to pid $pid ..."
  kill_and_wait "$pid"
  rm -f "$PID_FILE"
  say "node $NODE stopped in $(since "$t0")"
}

do_node_kill() {
  node_env "$1"
  local pid
  if ! pid="$(running_pid)"; then say "node $NODE not running"; rm -f "$PID_FILE"; return 0; fi
  kill -KILL "$pid" 2>/dev/null || true
  while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
  rm -f "$PID_FILE"
  say "node $NODE killed (SIGKILL to pid $pid)"
}

do_node_start() {
  local t0
  t0=$(now_ms)
  cluster_prepare
  node_env "$1"
  cluster_launch_node
  local pid="${LAUNCHED_PID:-$(running_pid)}"
  cluster_wait_node "$pid" "$START_TIMEOUT" || { [[ -n "$LAUNCHED_PID" ]] && kill_and_wait "$pid"; rm -f "$PID_FILE"; exit 1; }
  say "node $NODE up in $(since "$t0")"
}

do_cluster_status() {
  local i pid rc=0
  for (( i = 1; i <= KAFKA_NODES; i++ )); do
    node_env "$i"
    if pid="$(running_pid)" && port_open "$KAFKA_PORT"; then
      echo "node $i: running on $HOST:$KAFKA_PORT (pid $pid)"
    elif [[ -n "${pid:-}" ]] && pid="$(running_pid)"; then
      echo "node $i: process $pid alive, $HOST:$KAFKA_PORT not accepting connections"; rc=1
    else
      echo "node $i: not running ($HOST:$KAFKA_PORT)"; rc=1
    fi
  done
  return $rc
}

do_cluster_reset() {
  do_cluster_stop
  [[ -n "$CLUSTER_DIR" && "$CLUSTER_DIR" != "/" && "$CLUSTER_DIR" != "$REPO_DIR" && "$CLUSTER_DIR" != "$CACHE_DIR" ]] \
    || die "refusing to delete suspicious state dir '$CLUSTER_DIR'"
  rm -rf "$CLUSTER_DIR"
  say "cluster state $CLUSTER_DIR deleted (next start formats a fresh cluster)"
}

do_cluster_logs() {
  local n=1
  if [[ "${1:-}" =~ ^[0-9]+$ ]]; then n="$1"; shift; fi
  node_env "$n"
  do_logs "$@"
}

# The verbs below use the CLI tools against the PLAINTEXT listeners (super users in ACL mode).
# leader TOPIC PARTITION: the node id leading that partition (-1 or "none" if leaderless).
do_cluster_leader() {
  [[ $# -eq 2 ]] || die "usage: $0 leader TOPIC PARTITION"
  local out
  out="$(do_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(cluster_bootstrap)" --describe --topic "$1")" \
    || die "describing topic $1 failed"
  awk -v p="$2" '{ for (i = 1; i < NF; i++) { if ($i == "Partition:" && $(i+1) == p) hit = 1; if (hit && $i == "Leader:") { print $(i+1); exit } } }' <<<"$out" \
    | grep . || die "topic $1 has no partition $2"
}

# controller: the node id of the active controller (the KRaft quorum leader).
do_cluster_controller() {
  local out
  out="$(do_tool org.apache.kafka.tools.MetadataQuorumCommand --bootstrap-server "$(cluster_bootstrap)" describe --status)" \
    || die "describing the metadata quorum failed"
  sed -nE 's/^LeaderId:[[:space:]]*([0-9-]+).*/\1/p' <<<"$out" | grep . || die "no LeaderId in: $out"
}

# under-replicated: how many partitions have fewer in-sync replicas than replicas.
do_cluster_urp() {
  local out
  out="$(do_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$(cluster_bootstrap)" --describe --under-replicated-partitions)" \
    || die "describing under-replicated partitions failed"
  grep -c "Partition:" <<<"$out" || true
}

do_cluster_env() {
  cat <<ENV
KAFKA_VERSION=$KAFKA_VERSION
KAFKA_NODES=$KAFKA_NODES
KAFKA_CLUSTER_ACL=$KAFKA_CLUSTER_ACL
KAFKA_HEAP_OPTS=$KAFKA_HEAP_OPTS
KAFKA_STATE_DIR=$CLUSTER_DIR
KAFKA_LIBS=$LIBS_DIR
KAFKA_BOOTSTRAP_SERVERS=$(cluster_bootstrap)
KAFKA_CONTROLLER_VOTERS=$(cluster_voters)
ENV
  if [[ "$KAFKA_CLUSTER_ACL" == 1 ]]; then
    cat <<ENV
KAFKA_SASL_BOOTSTRAP_SERVERS=$(cluster_sasl_bootstrap)
KAFKA_ADMIN_CLIENT_PROPERTIES=$CLUSTER_DIR/$ADMIN_USER-client.properties
KAFKA_SCRAM_USERS=$ADMIN_USER:$ADMIN_PASSWORD (super user),$SCRAM_USER:$SCRAM_PASSWORD
ENV
  fi
}

cluster_main() {
  local cmd="$1"; shift
  case "$cmd" in
    fetch)      need_java; fetch; write_tools_log4j; ensure_probe ;;
    start)      with_lock "$CLUSTER_DIR.lck" do_cluster_start ;;
    stop)       with_lock "$CLUSTER_DIR.lck" do_cluster_stop ;;
    status)     do_cluster_status ;;
    reset)      with_lock "$CLUSTER_DIR.lck" do_cluster_reset ;;
    logs)       do_cluster_logs "$@" ;;
    tool)       do_tool "$@" ;;
    delete-topics) do_delete_topics "$@" ;;
    env)        do_cluster_env ;;
    stop-node)  [[ $# -eq 1 ]] || die "usage: $0 stop-node N"; with_lock "$CLUSTER_DIR.lck" do_node_stop "$1" ;;
    kill-node)  [[ $# -eq 1 ]] || die "usage: $0 kill-node N"; do_node_kill "$1" ;;
    start-node) [[ $# -eq 1 ]] || die "usage: $0 start-node N"; with_lock "$CLUSTER_DIR.lck" do_node_start "$1" ;;
    leader)     do_cluster_leader "$@" ;;
    controller) do_cluster_controller ;;
    under-replicated) do_cluster_urp ;;
    -h|--help|help) usage ;;
    *) usage; exit 2 ;;
  esac
}

usage() {
  awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "${BASH_SOURCE[0]}" >&2
}

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
if (( KAFKA_NODES > 1 )); then
  cluster_main "$cmd" "$@"
  exit $?
fi
case "$cmd" in
  stop-node|kill-node|start-node|leader|controller|under-replicated) die "'$cmd' is for a cluster (KAFKA_NODES=3)" ;;
  fetch)  need_java; fetch; write_tools_log4j; ensure_probe ;;
  start)  with_lock "$STATE_DIR.lck" do_start ;;
  stop)   with_lock "$STATE_DIR.lck" do_stop ;;
  status) do_status ;;
  reset)  with_lock "$STATE_DIR.lck" do_reset ;;
  logs)   do_logs "$@" ;;
  tool)   do_tool "$@" ;;
  delete-topics) do_delete_topics "$@" ;;
  env)    do_env ;;
  -h|--help|help) usage ;;
  *) usage; exit 2 ;;
esac
