package example.hookline;

import com.google.protobuf.ByteString;
import hookline.v1.Hookline.Event;
import java.io.ByteArrayOutputStream;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.serialization.ByteArraySerializer;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Publishes hookline.v1.Event records to Hookline's events topic with the Apache Kafka Java client.
 *
 * <pre>
 * hookline-producer --bootstrap HOST:PORT --topic TOPIC --codec none|gzip|snappy|lz4|zstd
 *                   --count N --id-prefix PREFIX [--type order.created] [--null-key]
 *                   [--traceparent 00-...-01] [--payload-bytes N]
 *                   [--transactional-id ID --abort-every K]
 *                   [--sr-framing [--sr-message-index 0]]
 * </pre>
 *
 * Prints {@code ok <id>} for every event once Kafka acknowledged it (with transactions: once its
 * transaction committed) and {@code aborted <id>} for events whose transaction was aborted. Exits 0
 * only if every event ended as intended.
 */
public final class Producer {
  private static final String LANG = "java";

  /**
   * Schema id written in the Schema Registry framing. A placeholder: a real deployment registers
   * hookline.proto with its registry and writes the id it was given.
   */
  private static final int SCHEMA_ID = 1;

  private Producer() {}

  public static void main(String[] args) {
    Options options;
    try {
      options = Options.parse(args);
    } catch (IllegalArgumentException e) {
      System.err.println("hookline-producer: " + e.getMessage());
      System.err.println(Options.USAGE);
      System.exit(2);
      return;
    }
    int status;
    try {
      status = options.transactionalId == null ? produce(options) : produceTransactions(options);
    } catch (Exception e) {
      System.err.println("hookline-producer: error: " + e);
      status = 1;
    }
    System.out.flush();
    System.exit(status);
  }

  /** The producer settings: idempotent, acks=all, the chosen codec, room for a ~1 MB event. */
  static Properties config(Options o) {
    Properties p = new Properties();
    p.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, o.bootstrap);
    p.put(ProducerConfig.CLIENT_ID_CONFIG, "hookline-producer-java");
    p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, true);
    p.put(ProducerConfig.ACKS_CONFIG, "all");
    p.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, o.codec);
    // 1 MiB, the broker's default max.message.bytes: one request (and one batch) may carry an
    // event with a payload of about 1,000,000 bytes.
    p.put(ProducerConfig.MAX_REQUEST_SIZE_CONFIG, 1_048_576);
    p.put(ProducerConfig.LINGER_MS_CONFIG, 5);
    // Give up on a missing topic or an unreachable broker after 15 s rather than the default 60 s.
    p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 15_000);
    if (o.transactionalId != null) {
      p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, o.transactionalId);
    }
    p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
    return p;
  }

  /** Sends every event, then waits for each acknowledgement in turn. */
  static int produce(Options o) {
    List<String> ids = new ArrayList<>(o.count);
    List<Future<RecordMetadata>> acks = new ArrayList<>(o.count);
    int failed = 0;
    try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(config(o))) {
      for (int i = 0; i < o.count; i++) {
        ids.add(idOf(o, i));
        Future<RecordMetadata> ack = producer.send(record(o, i));
        acks.add(ack);
        if (ack.isDone() && failedAlready(ack)) {
          break; // e.g. no such topic: the next sends would fail the same way, slowly
        }
      }
      for (int i = 0; i < acks.size(); i++) {
        try {
          acks.get(i).get();
          System.out.println("ok " + ids.get(i));
        } catch (ExecutionException e) {
          failed++;
          System.err.println("hookline-producer: " + ids.get(i) + " was not acknowledged: " + e.getCause());
        } catch (InterruptedException e) {
          Thread.currentThread().interrupt();
          throw new KafkaException("interrupted", e);
        }
      }
    }
    failed += o.count - acks.size();
    if (failed > 0) {
      System.err.println("hookline-producer: " + failed + " of " + o.count + " events were not acknowledged");
      return 1;
    }
    return 0;
  }

  static boolean failedAlready(Future<RecordMetadata> ack) {
    try {
      ack.get();
      return false;
    } catch (ExecutionException e) {
      return true;
    } catch (InterruptedException e) {
      Thread.currentThread().interrupt();
      return true;
    }
  }

  /**
   * One transaction per event; every {@code abortEvery}-th transaction is aborted after its record
   * was written (so a read_committed consumer must skip it), the others are committed.
   */
  static int produceTransactions(Options o) throws InterruptedException {
    try (KafkaProducer<String, byte[]> producer = new KafkaProducer<>(config(o))) {
      producer.initTransactions();
      for (int i = 0; i < o.count; i++) {
        boolean abort = o.abortEvery > 0 && (i + 1) % o.abortEvery == 0;
        String id = idOf(o, i);
        producer.beginTransaction();
        try {
          Future<RecordMetadata> ack = producer.send(record(o, i));
          if (abort) {
            ack.get(); // written to the log, then aborted
            producer.abortTransaction();
            System.out.println("aborted " + id);
          } else {
            producer.commitTransaction();
            ack.get();
            System.out.println("ok " + id);
          }
        } catch (ExecutionException | KafkaException e) {
          // Not committed: say so and stop. (A fenced producer cannot abort; close() cleans up.)
          System.err.println("hookline-producer: transaction of " + id + " failed: "
              + (e instanceof ExecutionException ? e.getCause() : e));
          try {
            producer.abortTransaction();
          } catch (KafkaException ignored) {
            // the broker aborts it when the transaction times out
          }
          return 1;
        }
      }
    }
    return 0;
  }

  static String idOf(Options o, int i) {
    return o.idPrefix + "-" + i;
  }

  static ProducerRecord<String, byte[]> record(Options o, int i) {
    Event event = Event.newBuilder()
        .setId(idOf(o, i))
        .setType(o.type)
        .setSource(LANG)
        .setOccurredAtMs(System.currentTimeMillis())
        .setContentType("application/json")
        .setPayload(ByteString.copyFrom(payload(i, o.payloadBytes), StandardCharsets.UTF_8))
        .build();
    byte[] value = o.srFraming ? schemaRegistryFrame(o.srMessageIndex, event.toByteArray()) : event.toByteArray();
    String key = o.nullKey ? null : event.getId();
    ProducerRecord<String, byte[]> record = new ProducerRecord<>(o.topic, key, value);
    if (o.traceparent != null) {
      record.headers().add("traceparent", o.traceparent.getBytes(StandardCharsets.US_ASCII));
    }
    return record;
  }

  /**
   * The webhook body: {@code {"i":<i>,"lang":"java"}}, or with {@code size >= 0} a {@code "pad"}
   * of x's that makes it exactly {@code size} bytes.
   */
  static String payload(int i, int size) {
    String head = "{\"i\":" + i + ",\"lang\":\"" + LANG + "\"";
    if (size < 0) {
      return head + "}";
    }
    String open = head + ",\"pad\":\"";
    int pad = size - open.length() - 2;
    if (pad < 0) {
      throw new IllegalArgumentException("--payload-bytes " + size + " is too small for event " + i
          + " (at least " + (open.length() + 2) + ")");
    }
    return open + "x".repeat(pad) + "\"}";
  }

  /**
   * Confluent Schema Registry wire format for protobuf: magic byte 0, the schema id (4 bytes, big
   * endian), the message-index path of the message type in the schema ([0] is written as the single
   * byte 0; otherwise a zigzag varint count followed by zigzag varint indexes), then the message.
   */
  static byte[] schemaRegistryFrame(int messageIndex, byte[] message) {
    ByteArrayOutputStream out = new ByteArrayOutputStream(message.length + 8);
    out.write(0);
    out.write(SCHEMA_ID >>> 24);
    out.write(SCHEMA_ID >>> 16);
    out.write(SCHEMA_ID >>> 8);
    out.write(SCHEMA_ID);
    if (messageIndex == 0) {
      out.write(0);
    } else {
      writeZigzagVarint(out, 1);
      writeZigzagVarint(out, messageIndex);
    }
    out.writeBytes(message);
    return out.toByteArray();
  }

  static void writeZigzagVarint(ByteArrayOutputStream out, int value) {
    long v = ((long) value << 1) ^ ((long) value >> 31);
    while ((v & ~0x7FL) != 0) {
      out.write((int) ((v & 0x7F) | 0x80));
      v >>>= 7;
    }
    out.write((int) v);
  }

  /** The command line. */
  static final class Options {
    static final String USAGE = "usage: hookline-producer --bootstrap HOST:PORT --topic TOPIC"
        + " --codec none|gzip|snappy|lz4|zstd --count N --id-prefix PREFIX\n"
        + "         [--type order.created] [--null-key] [--traceparent 00-...-01] [--payload-bytes N]\n"
        + "         [--transactional-id ID --abort-every K] [--sr-framing [--sr-message-index 0]]";

    String bootstrap;
    String topic;
    String codec;
    int count = -1;
    String idPrefix;
    String type = "order.created";
    boolean nullKey;
    String traceparent;
    int payloadBytes = -1;
    String transactionalId;
    int abortEvery;
    boolean srFraming;
    int srMessageIndex;

    static Options parse(String[] args) {
      Options o = new Options();
      for (int i = 0; i < args.length; i++) {
        String flag = args[i];
        switch (flag) {
          case "--null-key" -> o.nullKey = true;
          case "--sr-framing" -> o.srFraming = true;
          case "-h", "--help" -> {
            System.out.println(USAGE);
            System.exit(0);
          }
          default -> {
            if (i + 1 >= args.length) {
              throw new IllegalArgumentException(flag + " needs a value");
            }
            String value = args[++i];
            switch (flag) {
              case "--bootstrap" -> o.bootstrap = value;
              case "--topic" -> o.topic = value;
              case "--codec" -> o.codec = value;
              case "--count" -> o.count = number(flag, value);
              case "--id-prefix" -> o.idPrefix = value;
              case "--type" -> o.type = value;
              case "--traceparent" -> o.traceparent = value;
              case "--payload-bytes" -> o.payloadBytes = number(flag, value);
              case "--transactional-id" -> o.transactionalId = value;
              case "--abort-every" -> o.abortEvery = number(flag, value);
              case "--sr-message-index" -> o.srMessageIndex = number(flag, value);
              default -> throw new IllegalArgumentException("unknown option " + flag);
            }
          }
        }
      }
      if (o.bootstrap == null || o.topic == null || o.codec == null || o.count < 0 || o.idPrefix == null) {
        throw new IllegalArgumentException("--bootstrap, --topic, --codec, --count and --id-prefix are required");
      }
      if (!List.of("none", "gzip", "snappy", "lz4", "zstd").contains(o.codec)) {
        throw new IllegalArgumentException("--codec " + o.codec + " is not one of none, gzip, snappy, lz4, zstd");
      }
      if (o.abortEvery > 0 && o.transactionalId == null) {
        throw new IllegalArgumentException("--abort-every needs --transactional-id");
      }
      if (o.srMessageIndex != 0 && !o.srFraming) {
        throw new IllegalArgumentException("--sr-message-index needs --sr-framing");
      }
      if (o.count > 0) {
        payload(o.count - 1, o.payloadBytes); // the longest id's payload must fit too
      }
      return o;
    }

    static int number(String flag, String value) {
      try {
        int n = Integer.parseInt(value);
        if (n < 0) {
          throw new NumberFormatException();
        }
        return n;
      } catch (NumberFormatException e) {
        throw new IllegalArgumentException(flag + " wants a number >= 0, not " + value);
      }
    }
  }
}
