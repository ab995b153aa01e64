#!/usr/bin/env bash
# The demo: real Kafka on this machine, and mmplan working on it. Needs Python 3.10+, Java 17+, Maven.
# Leaves the sandbox running; stop it with `.venv/bin/mmplan sandbox down`.
set -euo pipefail
cd "$(dirname "$0")"
[ -x .venv/bin/mmplan ] || { python3 -m venv .venv && .venv/bin/pip install --quiet -e .; }
mm=.venv/bin/mmplan
topology=.mmplan/sandbox/topology.yaml
step() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

step mmplan sandbox up
$mm sandbox up
step "create topic orders (3 partitions, retention.ms=86400000) on us-east"
.venv/bin/python - "$topology" <<'PY'
import sys, yaml
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError
servers = yaml.safe_load(open(sys.argv[1]))["clusters"]["us-east"]["bootstrap_servers"]
admin = KafkaAdminClient(bootstrap_servers=servers)
try:
    admin.create_topics([NewTopic("orders", 3, 1, topic_configs={"retention.ms": "86400000"})])
except TopicAlreadyExistsError:
    pass
admin.close()
PY
step mmplan validate "$topology"
$mm validate "$topology"
step mmplan graph "$topology"
$mm graph "$topology"
step mmplan plan "$topology"
$mm plan "$topology" || [ $? -eq 2 ]
step mmplan apply "$topology" --auto-approve
$mm apply "$topology" --auto-approve
step mmplan plan "$topology"
$mm plan "$topology"
step "mmplan run $topology  (in the background), while 10,000 records go to us-east's orders"
$mm run "$topology" --log-format json 2> .mmplan/run.log &
daemon=$!
.venv/bin/python - "$topology" <<'PY'
import sys, time, yaml
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
clusters = yaml.safe_load(open(sys.argv[1]))["clusters"]
producer = KafkaProducer(bootstrap_servers=clusters["us-east"]["bootstrap_servers"], linger_ms=5)
for i in range(10000):
    producer.send("orders", key=f"order-{i}".encode(), value=b'{"amount": %d}' % i)
producer.flush()
target = KafkaConsumer(bootstrap_servers=clusters["us-west"]["bootstrap_servers"])
parts = [TopicPartition("us-east.orders", p) for p in range(3)]
deadline = time.monotonic() + 60
while (total := sum(target.end_offsets(parts).values())) < 10000 and time.monotonic() < deadline:
    time.sleep(0.5)
print(f"us-west now holds {total} records in us-east.orders")
target.close()
PY
step mmplan status "$topology"
$mm status "$topology" || true
kill -TERM "$daemon"; wait "$daemon" || true
printf '\nThe sandbox is still running: `%s sandbox status`, and `%s sandbox down` to stop it.\n' "$mm" "$mm"
