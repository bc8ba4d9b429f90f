"""librdkafka (confluent-kafka) driver for benches/kafka.rs (throughput is measured with kcat).

  latency BOOTSTRAP TOPIC COUNT         -> produces {"id": i} one at a time (acks=all), printing
                                           "<i> <unix seconds when sent>" as each is acknowledged
"""
import json
import sys
import time

from confluent_kafka import Producer


def latency(bootstrap, topic, count):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for i in range(count):
        sent = time.time()
        p.produce(topic, value=json.dumps({"id": i}))
        p.flush(10)
        print(i, sent, flush=True)
        time.sleep(0.02)


if __name__ == "__main__":
    cmd, bootstrap, topic, *rest = sys.argv[1:]
    if cmd != "latency":
        sys.exit(f"unknown command {cmd}")
    latency(bootstrap, topic, int(rest[0]))
