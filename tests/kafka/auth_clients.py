"""Real Kafka clients logging in to Weir with SASL, driven by tests/auth.rs.

  roundtrip LIB BOOTSTRAP PROTOCOL MECHANISM USER PASSWORD CAFILE TOPIC
      LIB confluent (librdkafka) or python (kafka-python); PROTOCOL SASL_PLAINTEXT, SASL_SSL,
      SSL or PLAINTEXT; MECHANISM SCRAM-SHA-256 or PLAIN (ignored without SASL); CAFILE the CA
      to verify the server with ('-' for none). Produces 3 records to TOPIC (acks=all) and reads
      TOPIC back from the start; prints "ok <records read>", or "failed <error>" when the client
      cannot get in (a refused login, a closed connection).
  topics BOOTSTRAP PROTOCOL MECHANISM USER PASSWORD CAFILE
      librdkafka's Metadata as that role: the topic names it lists, one line, space-separated.
  consume BOOTSTRAP PROTOCOL MECHANISM USER PASSWORD CAFILE TOPIC
      reads TOPIC's partition 0 from the start with librdkafka: "ok <records read>", or
      "failed <error name>" for the first error the consumer reports.
"""
import json
import sys

RECORDS = 3
TIMEOUT_S = 10


def confluent_config(bootstrap, protocol, mechanism, user, password, cafile):
    config = {"bootstrap.servers": bootstrap, "security.protocol": protocol,
              "socket.timeout.ms": TIMEOUT_S * 1000, "reconnect.backoff.max.ms": 200}
    if protocol.startswith("SASL"):
        config.update({"sasl.mechanisms": mechanism, "sasl.username": user,
                       "sasl.password": password})
    if cafile != "-":
        config["ssl.ca.location"] = cafile
    return config


def roundtrip_confluent(bootstrap, protocol, mechanism, user, password, cafile, topic):
    from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

    errors = []
    config = confluent_config(bootstrap, protocol, mechanism, user, password, cafile)
    config["error_cb"] = lambda err: errors.append(err)
    p = Producer({**config, "acks": "all", "message.timeout.ms": TIMEOUT_S * 1000})
    # Metadata, one second at a time: a refused login shows in error_cb long before a
    # whole timeout has passed.
    for _ in range(TIMEOUT_S):
        try:
            p.list_topics(timeout=1)
            break
        except KafkaException as e:
            p.poll(0)
            if errors:
                print(f"failed {errors[0].name()}: {errors[0].str()}")
                return
    else:
        print("failed no metadata")
        return
    acked = []
    for i in range(RECORDS):
        # A refusal comes back in the delivery report, or at once when the client already
        # knows it from Metadata.
        try:
            p.produce(topic, value=json.dumps({"user_id": i, "amount": i}),
                      on_delivery=lambda err, msg: acked.append(err))
        except KafkaException as e:
            print(f"failed produce {e.args[0].name()}")
            return
    p.flush(TIMEOUT_S)
    if len(acked) != RECORDS or any(acked):
        print(f"failed produce {acked} {errors}")
        return
    c = Consumer({**config, "group.id": "auth-test", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    seen = 0
    while seen < RECORDS:
        msg = c.poll(TIMEOUT_S)
        if msg is None:
            break
        if not msg.error():
            seen += 1
    c.close()
    print(f"ok {seen}")


def roundtrip_python(bootstrap, protocol, mechanism, user, password, cafile, topic):
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.errors import KafkaError

    config = {"bootstrap_servers": bootstrap, "security_protocol": protocol,
              "request_timeout_ms": TIMEOUT_S * 1000}
    if protocol.startswith("SASL"):
        config.update({"sasl_mechanism": mechanism, "sasl_plain_username": user,
                       "sasl_plain_password": password})
    if cafile != "-":
        config["ssl_cafile"] = cafile
    try:
        p = KafkaProducer(acks="all", **config)
        for i in range(RECORDS):
            p.send(topic, json.dumps({"user_id": i, "amount": i}).encode()).get(timeout=TIMEOUT_S)
        p.close()
        c = KafkaConsumer(consumer_timeout_ms=TIMEOUT_S * 1000, enable_auto_commit=False, **config)
    except KafkaError as e:
        print(f"failed {type(e).__name__}: {e}")
        return
    part = TopicPartition(topic, 0)
    c.assign([part])
    c.seek(part, 0)
    seen = 0
    for _ in c:
        seen += 1
        if seen >= RECORDS:
            break
    c.close()
    print(f"ok {seen}")


def topics_confluent(bootstrap, protocol, mechanism, user, password, cafile):
    from confluent_kafka.admin import AdminClient

    config = confluent_config(bootstrap, protocol, mechanism, user, password, cafile)
    metadata = AdminClient(config).list_topics(timeout=TIMEOUT_S)
    print(" ".join(sorted(metadata.topics)))


def consume_confluent(bootstrap, protocol, mechanism, user, password, cafile, topic):
    from confluent_kafka import Consumer, TopicPartition

    errors = []
    config = confluent_config(bootstrap, protocol, mechanism, user, password, cafile)
    config["error_cb"] = lambda err: errors.append(err)
    c = Consumer({**config, "group.id": "auth-test", "enable.auto.commit": False})
    c.assign([TopicPartition(topic, 0, 0)])
    seen = 0
    for _ in range(TIMEOUT_S):
        msg = c.poll(1)
        if msg is not None and msg.error():
            errors.append(msg.error())
        elif msg is not None:
            seen += 1
        if errors or seen >= RECORDS:
            break
    c.close()
    print(f"failed {errors[0].name()}" if errors else f"ok {seen}")


def main():
    command, *args = sys.argv[1:]
    if command == "topics":
        topics_confluent(*args)
    elif command == "consume":
        consume_confluent(*args)
    else:
        assert command == "roundtrip", command
        lib, *args = args
        {"confluent": roundtrip_confluent, "python": roundtrip_python}[lib](*args)


if __name__ == "__main__":
    main()
