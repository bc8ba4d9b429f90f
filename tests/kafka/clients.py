"""Real Kafka clients against Weir, driven by tests/kafka.rs.

  produce-confluent BOOTSTRAP TOPIC COUNT COMPRESSION START  -> prints the number of acked records
  produce-python    BOOTSTRAP TOPIC COUNT START              -> kafka-python producer, acks=all
  produce-until-error BOOTSTRAP TOPIC                        -> prints each acked key until the broker dies
  produce-lines     BOOTSTRAP TOPIC IDEMPOTENT               -> one record {"id", "k", "v"} per stdin
                                                                line "id k v" (key: id), acks=all,
                                                                idempotent (1) or without retries (0);
                                                                prints each acked id (tests/chaos)
  consume-confluent BOOTSTRAP TOPIC COUNT                    -> prints the consumed values, one a line
  consume-python    BOOTSTRAP TOPIC COUNT                    -> same with kafka-python
  consume-keyed     BOOTSTRAP TOPIC                          -> every record as key TAB value, until idle
  create-topic      BOOTSTRAP TOPIC PARTITIONS               -> AdminClient.create_topics
  group-assignments BOOTSTRAP TOPIC GROUP SECONDS            -> prints each assignment received in GROUP
  group-consume     BOOTSTRAP TOPIC GROUP IDLE_ROUNDS        -> consumes from committed offsets, commits
  admin-describe    BOOTSTRAP TOPIC GROUP                    -> lists groups, describes GROUP and TOPIC's config
  produce-bomb      BOOTSTRAP TOPIC COMPRESSION BYTES        -> one record of BYTES 'a's in one compressed
                                                                batch, then a small one; prints each
                                                                delivery's error code and the end offset
Every record value is JSON {"user_id": i % 10, "amount": i}; the key is str(i).
"""
import json
import sys


def produce_confluent(bootstrap, topic, count, compression, start):
    from confluent_kafka import Producer

    acked = []
    errors = []

    def on_delivery(err, msg):
        (errors if err else acked).append(err or msg.offset())

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "compression.type": compression,
                  "linger.ms": 5, "api.version.request": True})
    for i in range(start, start + count):
        p.produce(topic, key=str(i), value=json.dumps({"user_id": i % 10, "amount": i}), on_delivery=on_delivery)
        p.poll(0)
    remaining = p.flush(30)
    if errors or remaining:
        print(f"errors={errors[:3]} remaining={remaining}", file=sys.stderr)
        sys.exit(1)
    print(len(acked))


def produce_bomb(bootstrap, topic, compression, size):
    """A decompression bomb: one highly compressible record of SIZE bytes in one batch."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    outcomes = []

    def on_delivery(err, msg):
        outcomes.append(err.code() if err else 0)

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "compression.type": compression,
                  "message.max.bytes": 2 * size, "receive.message.max.bytes": 4 * size,
                  "retries": 0, "linger.ms": 0})
    p.produce(topic, value=b"a" * size, on_delivery=on_delivery)
    p.flush(30)
    p.produce(topic, value=b"small", on_delivery=on_delivery)
    p.flush(30)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused"})
    low, high = c.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    c.close()
    print(f"{compression} errors={outcomes} end={high}")


def produce_until_error(bootstrap, topic):
    """Produces forever with acks=all, printing each acknowledged id at once; exits when the
    broker goes away (no retries across a restart, so nothing is written twice)."""
    from confluent_kafka import Producer

    failed = []

    def on_delivery(err, msg):
        if err:
            failed.append(err)
        else:
            print(msg.key().decode(), flush=True)

    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 1,
                  "message.timeout.ms": 2000, "retries": 0, "reconnect.backoff.max.ms": 100})
    i = 0
    while not failed:
        try:
            p.produce(topic, key=str(i), value=json.dumps({"user_id": i % 10, "amount": i}), on_delivery=on_delivery)
            i += 1
        except BufferError:
            pass
        p.poll(0.001)
    p.flush(5)


def produce_lines(bootstrap, topic, idempotent):
    from confluent_kafka import Producer

    config = {"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 2,
              "reconnect.backoff.max.ms": 100}
    if idempotent == "1":
        config["enable.idempotence"] = True
    else:
        config["retries"] = 0

    def on_delivery(err, msg):
        if not err:
            print(msg.key().decode(), flush=True)

    p = Producer(config)
    for line in sys.stdin:
        i, k, v = (int(x) for x in line.split())
        record = json.dumps({"id": i, "k": k, "v": v})
        while True:
            try:
                p.produce(topic, key=str(i), value=record, on_delivery=on_delivery)
                break
            except BufferError:
                p.poll(0.01)
        p.poll(0)
    p.flush(30)


def produce_python(bootstrap, topic, count, start):
    from kafka import KafkaProducer

    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    futures = [p.send(topic, key=str(i).encode(), value=json.dumps({"user_id": i % 10, "amount": i}).encode())
               for i in range(start, start + count)]
    p.flush(30)
    print(sum(1 for f in futures if f.get(timeout=30) is not None))


def consume_confluent(bootstrap, topic, count):
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    meta = c.list_topics(topic, timeout=10)
    parts = [TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.topics[topic].partitions]
    c.assign(parts)
    seen = []
    idle = 0
    while len(seen) < count and idle < 50:
        msg = c.poll(0.2)
        if msg is None:
            idle += 1
            continue
        if msg.error():
            print(f"error {msg.error()}", file=sys.stderr)
            sys.exit(1)
        seen.append(msg.value().decode())
    c.close()
    for v in seen:
        print(v)


def consume_keyed(bootstrap, topic):
    """Reads the whole topic (until idle), printing key TAB value per record ("-" for none)."""
    from confluent_kafka import Consumer, TopicPartition, OFFSET_BEGINNING

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "unused", "enable.auto.commit": False})
    meta = c.list_topics(topic, timeout=10)
    c.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in meta.topics[topic].partitions])
    idle = 0
    while idle < 10:
        msg = c.poll(0.2)
        if msg is None:
            idle += 1
            continue
        idle = 0
        key = msg.key().decode() if msg.key() is not None else "-"
        value = msg.value().decode() if msg.value() else "-"
        print(f"{key}\t{value}")
    c.close()


def consume_python(bootstrap, topic, count):
    from kafka import KafkaConsumer, TopicPartition

    c = KafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest",
                      consumer_timeout_ms=10000)
    parts = [TopicPartition(topic, p) for p in c.partitions_for_topic(topic)]
    c.assign(parts)
    c.seek_to_beginning(*parts)
    seen = []
    for msg in c:
        seen.append(msg.value.decode())
        if len(seen) >= count:
            break
    c.close()
    for v in seen:
        print(v)


def group_assignments(bootstrap, topic, group, stay_seconds):
    """Joins GROUP subscribed to TOPIC and prints each distinct assignment it gets
    ("assigned 0,2"), for STAY_SECONDS; then leaves the group."""
    import time
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "heartbeat.interval.ms": 300, "session.timeout.ms": 6000})
    c.subscribe([topic])
    last = None
    end = time.time() + stay_seconds
    while time.time() < end:
        c.poll(0.1)
        now = sorted(tp.partition for tp in c.assignment())
        if now != last:
            print("assigned " + ",".join(map(str, now)), flush=True)
            last = now
    c.close()


def group_consume(bootstrap, topic, group, idle_rounds):
    """Consumes TOPIC in GROUP from the committed offsets (earliest if none) until idle,
    commits synchronously and prints the values."""
    from confluent_kafka import Consumer

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False,
                  "auto.offset.reset": "earliest", "heartbeat.interval.ms": 300, "session.timeout.ms": 6000})
    c.subscribe([topic])
    seen = []
    idle = 0
    while idle < idle_rounds:
        msg = c.poll(0.2)
        if msg is None:
            # Idle time counts only once the group has given us partitions.
            if c.assignment():
                idle += 1
            continue
        if msg.error():
            print(f"error {msg.error()}", file=sys.stderr)
            sys.exit(1)
        idle = 0
        seen.append(msg.value().decode())
    if seen:
        c.commit(asynchronous=False)
    c.close()
    for v in seen:
        print(v)


def admin_describe(bootstrap, topic, group):
    """Prints the group ids AdminClient lists, GROUP's state, and TOPIC's cleanup.policy."""
    from confluent_kafka.admin import AdminClient, ConfigResource, ResourceType

    admin = AdminClient({"bootstrap.servers": bootstrap})
    listed = admin.list_consumer_groups().result(10)
    print("groups " + ",".join(sorted(g.group_id for g in listed.valid)))
    described = admin.describe_consumer_groups([group])[group].result(10)
    print("state " + str(described.state).split(".")[-1])
    resource = ConfigResource(ResourceType.TOPIC, topic)
    configs = admin.describe_configs([resource])[resource].result(10)
    print("cleanup.policy " + configs["cleanup.policy"].value)


def create_topic(bootstrap, topic, partitions):
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for _, future in admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)]).items():
        future.result(10)
    print("created")


def retention(bootstrap, topic):
    """Creates TOPIC with one-byte segments and a one-byte size limit, produces three records
    one batch each, and prints what Kafka clients see: the configs, the offsets, the records."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = {"retention.bytes": "1", "segment.bytes": "1", "retention.ms": "604800000"}
    admin.create_topics([NewTopic(topic, 1, 1, config=configs)])[topic].result(10)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    described = admin.describe_configs([resource])[resource].result(10)
    print("retention.bytes " + described["retention.bytes"].value)
    print("retention.ms " + described["retention.ms"].value)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for i in range(3):
        producer.produce(topic, value=f"v{i}".encode())
        producer.flush(10)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "retention-check",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    print(f"watermarks {low} {high}")
    consumer.assign([TopicPartition(topic, 0, 0)])  # below the log start: the consumer resets
    seen = []
    while len(seen) < high - low:
        m = consumer.poll(10)
        if m is None:
            break
        if m.error() is None:
            seen.append(f"{m.offset()}={m.value().decode()}")
    consumer.close()
    print("records " + ",".join(seen))


def compaction(bootstrap, topic):
    """Creates a compacted TOPIC with one-byte segments, produces keyed records one batch
    each, and prints its cleanup.policy and what a consumer from the beginning reads."""
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic, ResourceType

    admin = AdminClient({"bootstrap.servers": bootstrap})
    configs = {"cleanup.policy": "compact", "segment.bytes": "1"}
    admin.create_topics([NewTopic(topic, 1, 1, config=configs)])[topic].result(10)
    resource = ConfigResource(ResourceType.TOPIC, topic)
    described = admin.describe_configs([resource])[resource].result(10)
    print("cleanup.policy " + described["cleanup.policy"].value)
    producer = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 0})
    for key, value in [("k1", "a"), ("k2", "b"), ("k1", "c"), ("k3", "d")]:
        producer.produce(topic, key=key.encode(), value=value.encode())
        producer.flush(10)
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "compaction-check",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, 0, 0)])
    seen = []
    while True:
        m = consumer.poll(10)
        if m is None:
            break
        if m.error() is None:
            seen.append(f"{m.offset()}={m.key().decode()}:{m.value().decode()}")
            if m.offset() == 3:
                break
    consumer.close()
    print("records " + ",".join(seen))


if __name__ == "__main__":
    cmd, bootstrap, topic, *rest = sys.argv[1:]
    if cmd == "produce-confluent":
        produce_confluent(bootstrap, topic, int(rest[0]), rest[1], int(rest[2]))
    elif cmd == "produce-until-error":
        produce_until_error(bootstrap, topic)
    elif cmd == "produce-lines":
        produce_lines(bootstrap, topic, rest[0])
    elif cmd == "produce-python":
        produce_python(bootstrap, topic, int(rest[0]), int(rest[1]))
    elif cmd == "consume-confluent":
        consume_confluent(bootstrap, topic, int(rest[0]))
    elif cmd == "consume-keyed":
        consume_keyed(bootstrap, topic)
    elif cmd == "consume-python":
        consume_python(bootstrap, topic, int(rest[0]))
    elif cmd == "group-assignments":
        group_assignments(bootstrap, topic, rest[0], float(rest[1]))
    elif cmd == "group-consume":
        group_consume(bootstrap, topic, rest[0], int(rest[1]))
    elif cmd == "admin-describe":
        admin_describe(bootstrap, topic, rest[0])
    elif cmd == "retention":
        retention(bootstrap, topic)
    elif cmd == "compaction":
        compaction(bootstrap, topic)
    elif cmd == "produce-bomb":
        produce_bomb(bootstrap, topic, rest[0], int(rest[1]))
    elif cmd == "create-topic":
        create_topic(bootstrap, topic, int(rest[0]))
    else:
        sys.exit(f"unknown command {cmd}")
