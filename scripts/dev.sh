#!/usr/bin/env bash
# The main job on a laptop: install what is missing, start a local Kafka, build Hookline,
# and run `hookline dev --demo`: every role in one process, a demo sink, a demo endpoint
# and sample events, printed as they arrive with their signature checked.
#
#   scripts/dev.sh                      run until Ctrl-C (one sample event a second)
#   scripts/dev.sh --demo-events 20     publish 20 events, wait for them, report, exit
#
# Kafka keeps running afterwards (scripts/kafka.sh stop to stop it).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bootstrap.sh
bash scripts/kafka.sh start
# The console's files are embedded in the release binary: build them first.
bash scripts/console.sh build
cargo build --release --locked -p hookline
export HOOKLINE_KAFKA__BOOTSTRAP_SERVERS=${HOOKLINE_KAFKA__BOOTSTRAP_SERVERS:-127.0.0.1:${KAFKA_PORT:-9092}}
export HOOKLINE_LOG__FORMAT=${HOOKLINE_LOG__FORMAT:-text}
exec target/release/hookline dev --demo "$@"
