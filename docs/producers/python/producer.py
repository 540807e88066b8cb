#!/usr/bin/env python3
"""Publishes hookline.v1.Event records to Hookline's events topic with confluent-kafka.

    producer.py --bootstrap HOST:PORT --topic TOPIC --codec none|gzip|snappy|lz4|zstd
                --count N --id-prefix PREFIX [--type order.created] [--null-key]
                [--traceparent 00-...-01] [--payload-bytes N]
                [--transactional-id ID --abort-every K]
                [--sr-framing [--sr-message-index 0]]

Prints "ok <id>" for every event once Kafka acknowledged it (with transactions: once its
transaction committed) and "aborted <id>" for events whose transaction was aborted; exits 0 only
if every event ended as intended.

`hookline_pb2` is generated from proto/hookline/v1/hookline.proto (scripts/producers.sh does it):
    python -m grpc_tools.protoc -I proto --python_out=OUT hookline/v1/hookline.proto
and OUT must be on PYTHONPATH.
"""

import argparse
import struct
import sys
import time

from confluent_kafka import KafkaException, Producer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.protobuf import ProtobufSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from hookline.v1 import hookline_pb2

LANG = "python"
CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
# Schema id of the hand-written framing (--sr-message-index other than 0). A placeholder: a real
# deployment registers hookline.proto with its registry; Confluent's serializer does that.
SCHEMA_ID = 1


def parse_args(argv):
    p = argparse.ArgumentParser(prog="hookline-producer", description=__doc__.split("\n")[0])
    p.add_argument("--bootstrap", required=True, help="Kafka bootstrap servers, HOST:PORT[,HOST:PORT]")
    p.add_argument("--topic", required=True, help="the events topic (<prefix>.events)")
    p.add_argument("--codec", required=True, choices=CODECS, help="compression codec")
    p.add_argument("--count", required=True, type=int, help="number of events")
    p.add_argument("--id-prefix", required=True, help="event ids are <prefix>-<i>")
    p.add_argument("--type", default="order.created", help="event type")
    p.add_argument("--null-key", action="store_true", help="produce without a record key")
    p.add_argument("--traceparent", help="W3C traceparent to send as a record header")
    p.add_argument("--payload-bytes", type=int, default=-1, help="pad each JSON payload to exactly N bytes")
    p.add_argument("--transactional-id", help="one transaction per event with this transactional.id")
    p.add_argument("--abort-every", type=int, default=0, help="abort every K-th transaction")
    p.add_argument("--sr-framing", action="store_true",
                   help="Confluent Schema Registry wire format (Confluent's ProtobufSerializer)")
    p.add_argument("--sr-message-index", type=int, default=0,
                   help="message index named by the framing (not 0: a hand-written frame)")
    a = p.parse_args(argv)
    if a.count < 0 or a.abort_every < 0 or a.sr_message_index < 0:
        p.error("--count, --abort-every and --sr-message-index cannot be negative")
    if a.abort_every and not a.transactional_id:
        p.error("--abort-every needs --transactional-id")
    if a.sr_message_index and not a.sr_framing:
        p.error("--sr-message-index needs --sr-framing")
    if a.count > 0:
        try:
            payload(a.count - 1, a.payload_bytes)  # the longest one must fit
        except ValueError as e:
            p.error(str(e))
    return a


def config(a):
    """Idempotent, acks=all, the chosen codec, room for an event of about 1 MB."""
    conf = {
        "bootstrap.servers": a.bootstrap,
        "client.id": "hookline-producer-python",
        "enable.idempotence": True,
        "acks": "all",
        "compression.type": a.codec,
        # The Java client's key hashing, so keys land where Java producers put them.
        "partitioner": "murmur2_random",
        # 1 MiB, the broker's default max.message.bytes (librdkafka's default, 1,000,000 bytes,
        # is too small for an event with a payload of about 1,000,000 bytes).
        "message.max.bytes": 1_048_576,
        "linger.ms": 5,
        "delivery.timeout.ms": 60_000,
    }
    if a.transactional_id:
        conf["transactional.id"] = a.transactional_id
    return conf


def payload(i, size):
    """The webhook body: {"i":<i>,"lang":"python"}, or with size >= 0 a "pad" of x's that makes it
    exactly size bytes."""
    head = '{"i":%d,"lang":"%s"' % (i, LANG)
    if size < 0:
        return (head + "}").encode()
    opening = head + ',"pad":"'
    pad = size - len(opening) - 2
    if pad < 0:
        raise ValueError("--payload-bytes %d is too small for event %d (at least %d)" % (size, i, len(opening) + 2))
    return (opening + "x" * pad + '"}').encode()


def zigzag_varint(n):
    n = (n << 1) ^ (n >> 63)
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def hand_written_frame(message_index, message):
    """Confluent's protobuf framing written by hand: magic byte 0, schema id (big endian), the
    message-index path ([0] as the single byte 0, else zigzag varint count and indexes), message."""
    indexes = b"\x00" if message_index == 0 else zigzag_varint(1) + zigzag_varint(message_index)
    return b"\x00" + struct.pack(">I", SCHEMA_ID) + indexes + message


def encoder(a):
    """Returns event -> record value."""
    if not a.sr_framing:
        return lambda event: event.SerializeToString()
    if a.sr_message_index != 0:
        # Confluent's serializer always names the message type it was given; this frame names
        # another one on purpose (a reader must refuse it).
        return lambda event: hand_written_frame(a.sr_message_index, event.SerializeToString())
    # Confluent's own serializer, with an in-memory registry (use {"url": "https://..."} for a
    # real one): it registers hookline.proto under "<topic>-value" and frames with its id.
    registry = SchemaRegistryClient.new_client({"url": "mock://hookline-producer"})
    serializer = ProtobufSerializer(hookline_pb2.Event, registry)
    ctx = SerializationContext(a.topic, MessageField.VALUE)
    return lambda event: serializer(event, ctx)


def main(argv):
    a = parse_args(argv)
    encode = encoder(a)
    producer = Producer(config(a))
    headers = [("traceparent", a.traceparent.encode())] if a.traceparent else None
    failed = []

    def produce(i, report):
        """Enqueues event i; report(err, event_id) runs when Kafka answered."""
        event = hookline_pb2.Event(
            id="%s-%d" % (a.id_prefix, i),
            type=a.type,
            source=LANG,
            occurred_at_ms=int(time.time() * 1000),
            content_type="application/json",
            payload=payload(i, a.payload_bytes),
        )
        value, key = encode(event), None if a.null_key else event.id
        while True:
            try:
                producer.produce(a.topic, value=value, key=key, headers=headers,
                                 on_delivery=lambda err, _msg: report(err, event.id))
                return event.id
            except BufferError:  # the local queue is full: serve delivery reports, then retry
                producer.poll(0.1)

    if a.transactional_id:
        return produce_transactions(a, producer, produce)

    def report(err, event_id):
        if err is not None:
            failed.append(err)
            print("hookline-producer: %s was not acknowledged: %s" % (event_id, err), file=sys.stderr)
        else:
            print("ok", event_id)

    for i in range(a.count):
        produce(i, report)
        producer.poll(0)
    remaining = producer.flush(90)
    sys.stdout.flush()
    if remaining or failed:
        print("hookline-producer: %d of %d events were not acknowledged" % (len(failed) + remaining, a.count),
              file=sys.stderr)
        return 1
    return 0


def produce_transactions(a, producer, produce):
    """One transaction per event; every abort_every-th is aborted after its record was written, so
    a read_committed consumer must skip it."""
    errors = []
    try:
        producer.init_transactions(30)
        for i in range(a.count):
            abort = a.abort_every > 0 and (i + 1) % a.abort_every == 0
            producer.begin_transaction()
            event_id = produce(i, lambda err, _id: err is not None and errors.append(err))
            producer.flush(30)  # acknowledged (commit would flush too)
            if errors:
                raise KafkaException(errors[0])
            if abort:
                producer.abort_transaction(30)
                print("aborted", event_id, flush=True)
            else:
                producer.commit_transaction(30)
                print("ok", event_id, flush=True)
    except KafkaException as e:
        print("hookline-producer: transaction failed: %s" % e, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
