"""librdkafka (confluent-kafka) drivers for benches/kafka.rs.

  throughput BOOTSTRAP TOPIC COUNT SIZE -> produces COUNT records of SIZE bytes with acks=all,
                                           prints "<records> <seconds>"
  latency BOOTSTRAP TOPIC COUNT         -> produces {"id": i} one at a time (acks=all), printing
                                           "<i> <unix seconds when sent>" as each is acknowledged
"""
import json
import sys
import time

from confluent_kafka import Producer


def throughput(bootstrap, topic, count, size):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "batch.size": 1_000_000, "queue.buffering.max.messages": 1_000_000,
                  "compression.type": "none"})
    value = b"x" * size
    failed = []
    start = time.time()
    for _ in range(count):
        while True:
            try:
                p.produce(topic, value=value, on_delivery=lambda err, _m: err and failed.append(err))
                break
            except BufferError:
                p.poll(0.001)
    p.flush(120)
    seconds = time.time() - start
    if failed:
        sys.exit(f"{len(failed)} records failed: {failed[0]}")
    print(count, seconds)


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
    if cmd == "throughput":
        throughput(bootstrap, topic, int(rest[0]), int(rest[1]))
    else:
        latency(bootstrap, topic, int(rest[0]))
