// Command hookline-producer publishes hookline.v1.Event records to Hookline's events topic with
// franz-go (kgo): an idempotent producer, acks=all, the chosen compression codec.
//
//	hookline-producer --bootstrap HOST:PORT --topic TOPIC --codec none|gzip|snappy|lz4|zstd
//	                  --count N --id-prefix PREFIX [--type order.created] [--null-key]
//	                  [--traceparent 00-...-01] [--payload-bytes N]
//	                  [--transactional-id ID --abort-every K]
//	                  [--sr-framing [--sr-message-index 0]]
//
// It prints "ok <id>" for every event once Kafka acknowledged it (with transactions: once its
// transaction committed) and "aborted <id>" for events whose transaction was aborted, and exits 0
// only if every event ended as intended.
//
// The Event type is generated from proto/hookline/v1/hookline.proto (protoc and protoc-gen-go on
// PATH; scripts/producers.sh does this): go generate && go build
package main

//go:generate protoc -I ../../../proto --go_out=. --go_opt=module=hookline.example/producer --go_opt=Mhookline/v1/hookline.proto=hookline.example/producer/hooklinev1 hookline/v1/hookline.proto

import (
	"context"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"google.golang.org/protobuf/proto"

	hooklinev1 "hookline.example/producer/hooklinev1"
)

const lang = "go"

// schemaID is the id written in the Schema Registry framing. A placeholder: a real deployment
// registers hookline.proto with its registry and writes the id it was given.
const schemaID = 1

type options struct {
	bootstrap, topic, codec, idPrefix, eventType, traceparent, transactionalID string
	count, payloadBytes, abortEvery, srMessageIndex                            int
	nullKey, srFraming                                                         bool
}

func main() {
	o, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintf(os.Stderr, "hookline-producer: %v\n", err)
		os.Exit(2)
	}
	if err := run(o); err != nil {
		fmt.Fprintf(os.Stderr, "hookline-producer: %v\n", err)
		os.Exit(1)
	}
}

func parseFlags(args []string) (options, error) {
	var o options
	fs := flag.NewFlagSet("hookline-producer", flag.ContinueOnError)
	fs.StringVar(&o.bootstrap, "bootstrap", "", "Kafka bootstrap servers, HOST:PORT[,HOST:PORT]")
	fs.StringVar(&o.topic, "topic", "", "the events topic (<prefix>.events)")
	fs.StringVar(&o.codec, "codec", "", "compression: none, gzip, snappy, lz4 or zstd")
	fs.IntVar(&o.count, "count", -1, "number of events")
	fs.StringVar(&o.idPrefix, "id-prefix", "", "event ids are <prefix>-<i>")
	fs.StringVar(&o.eventType, "type", "order.created", "event type")
	fs.BoolVar(&o.nullKey, "null-key", false, "produce without a record key")
	fs.StringVar(&o.traceparent, "traceparent", "", "W3C traceparent to send as a record header")
	fs.IntVar(&o.payloadBytes, "payload-bytes", -1, "pad each JSON payload to exactly this many bytes")
	fs.StringVar(&o.transactionalID, "transactional-id", "", "one transaction per event with this transactional.id")
	fs.IntVar(&o.abortEvery, "abort-every", 0, "abort every K-th transaction")
	fs.BoolVar(&o.srFraming, "sr-framing", false, "write values in the Confluent Schema Registry wire format")
	fs.IntVar(&o.srMessageIndex, "sr-message-index", 0, "message index named by the framing")
	if err := fs.Parse(args); err != nil {
		return o, err
	}
	switch {
	case fs.NArg() > 0:
		return o, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	case o.bootstrap == "" || o.topic == "" || o.codec == "" || o.count < 0 || o.idPrefix == "":
		return o, errors.New("--bootstrap, --topic, --codec, --count and --id-prefix are required")
	case o.abortEvery < 0 || o.srMessageIndex < 0:
		return o, errors.New("--abort-every and --sr-message-index cannot be negative")
	case o.abortEvery > 0 && o.transactionalID == "":
		return o, errors.New("--abort-every needs --transactional-id")
	case o.srMessageIndex != 0 && !o.srFraming:
		return o, errors.New("--sr-message-index needs --sr-framing")
	}
	if _, err := compression(o.codec); err != nil {
		return o, err
	}
	if o.count > 0 {
		if _, err := payload(o.count-1, o.payloadBytes); err != nil { // the longest one must fit
			return o, err
		}
	}
	return o, nil
}

func compression(codec string) (kgo.CompressionCodec, error) {
	switch codec {
	case "none":
		return kgo.NoCompression(), nil
	case "gzip":
		return kgo.GzipCompression(), nil
	case "snappy":
		return kgo.SnappyCompression(), nil
	case "lz4":
		return kgo.Lz4Compression(), nil
	case "zstd":
		return kgo.ZstdCompression(), nil
	}
	return kgo.CompressionCodec{}, fmt.Errorf("--codec %s is not one of none, gzip, snappy, lz4, zstd", codec)
}

func run(o options) error {
	codec, _ := compression(o.codec)
	opts := []kgo.Opt{
		kgo.SeedBrokers(strings.Split(o.bootstrap, ",")...),
		kgo.ClientID("hookline-producer-go"),
		kgo.DefaultProduceTopic(o.topic),
		// franz-go writes idempotently by default; acks=all is required for that and said here.
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerBatchCompression(codec),
		// 1 MiB, the broker's default max.message.bytes: room for an event whose payload is about
		// 1,000,000 bytes (franz-go's default batch limit, 1,000,012 bytes, is a little short).
		kgo.ProducerBatchMaxBytes(1 << 20),
		kgo.ProducerLinger(5 * time.Millisecond),
		kgo.RecordDeliveryTimeout(60 * time.Second),
	}
	if o.transactionalID != "" {
		opts = append(opts, kgo.TransactionalID(o.transactionalID))
	}
	client, err := kgo.NewClient(opts...)
	if err != nil {
		return err
	}
	defer client.Close()
	ctx := context.Background()
	if o.transactionalID != "" {
		return produceTransactions(ctx, client, o)
	}

	records := make([]*kgo.Record, o.count)
	ids := make(map[*kgo.Record]string, o.count)
	for i := range records {
		if records[i], err = record(o, i); err != nil {
			return err
		}
		ids[records[i]] = eventID(o, i)
	}
	failed := 0
	// ProduceSync returns once every record is acknowledged or failed (results in completion order).
	for _, r := range client.ProduceSync(ctx, records...) {
		id := ids[r.Record]
		if r.Err != nil {
			failed++
			fmt.Fprintf(os.Stderr, "hookline-producer: %s was not acknowledged: %v\n", id, r.Err)
			continue
		}
		fmt.Println("ok", id)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d events were not acknowledged", failed, o.count)
	}
	return nil
}

// produceTransactions puts each event in its own transaction and aborts every abortEvery-th one
// after its record was written, so a read_committed consumer must skip it.
func produceTransactions(ctx context.Context, client *kgo.Client, o options) error {
	for i := 0; i < o.count; i++ {
		rec, err := record(o, i)
		if err != nil {
			return err
		}
		id := eventID(o, i)
		abort := o.abortEvery > 0 && (i+1)%o.abortEvery == 0
		if err := client.BeginTransaction(); err != nil {
			return fmt.Errorf("beginning the transaction of %s: %w", id, err)
		}
		produced := client.ProduceSync(ctx, rec).FirstErr()
		end := kgo.TryCommit
		if abort || produced != nil {
			end = kgo.TryAbort
		}
		ended := client.EndTransaction(ctx, end)
		switch {
		case produced != nil:
			return fmt.Errorf("transaction of %s aborted, the record failed: %w", id, produced)
		case ended != nil:
			return fmt.Errorf("ending the transaction of %s: %w", id, ended)
		case abort:
			fmt.Println("aborted", id)
		default:
			fmt.Println("ok", id)
		}
	}
	return nil
}

func eventID(o options, i int) string { return o.idPrefix + "-" + strconv.Itoa(i) }

func record(o options, i int) (*kgo.Record, error) {
	body, err := payload(i, o.payloadBytes)
	if err != nil {
		return nil, err
	}
	event := &hooklinev1.Event{
		Id:           eventID(o, i),
		Type:         o.eventType,
		Source:       lang,
		OccurredAtMs: time.Now().UnixMilli(),
		ContentType:  "application/json",
		Payload:      body,
	}
	value, err := proto.Marshal(event)
	if err != nil {
		return nil, err
	}
	if o.srFraming {
		value = schemaRegistryFrame(o.srMessageIndex, value)
	}
	rec := &kgo.Record{Value: value}
	if !o.nullKey {
		rec.Key = []byte(event.Id)
	}
	if o.traceparent != "" {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: "traceparent", Value: []byte(o.traceparent)})
	}
	return rec, nil
}

// payload is the webhook body: {"i":<i>,"lang":"go"}, or with size >= 0 a "pad" of x's that
// makes it exactly size bytes.
func payload(i, size int) ([]byte, error) {
	head := `{"i":` + strconv.Itoa(i) + `,"lang":"` + lang + `"`
	if size < 0 {
		return []byte(head + "}"), nil
	}
	open := head + `,"pad":"`
	pad := size - len(open) - 2
	if pad < 0 {
		return nil, fmt.Errorf("--payload-bytes %d is too small for event %d (at least %d)", size, i, len(open)+2)
	}
	return []byte(open + strings.Repeat("x", pad) + `"}`), nil
}

// schemaRegistryFrame is the Confluent Schema Registry wire format for protobuf: magic byte 0,
// the schema id (4 bytes, big endian), the message-index path of the message type in the schema
// ([0] is written as the single byte 0; otherwise a zigzag varint count followed by zigzag varint
// indexes), then the message.
func schemaRegistryFrame(messageIndex int, message []byte) []byte {
	out := make([]byte, 0, len(message)+16)
	out = append(out, 0, byte(schemaID>>24), byte(schemaID>>16), byte(schemaID>>8), byte(schemaID))
	if messageIndex == 0 {
		out = append(out, 0)
	} else {
		out = binary.AppendVarint(out, 1) // AppendVarint zigzag-encodes
		out = binary.AppendVarint(out, int64(messageIndex))
	}
	return append(out, message...)
}
