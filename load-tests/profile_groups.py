#!/usr/bin/env python3
"""Groups the samples of a DWARF call-graph profile of hookline by the innermost frame that
names a known part of the pipeline (the grouping in docs/performance.md).

    perf record --call-graph dwarf,16384 -F 199 -p <hookline pid> -o perf.data -- sleep 12
    perf script -i perf.data -F comm,ip,sym > perf.script
    python3 load-tests/profile_groups.py perf.script [thread-name]

Each sample counts once, for the first rule (in the order below) that matches the frame
nearest the leaf; allocation and copies count for the part that called them.
"""
import sys,re,collections
rules=[
 ('signing', r'signature_header|SigningKey'),
 ('build request', r'Attempter::request|attempt::\{impl#1\}::request'),
 ('attempt record build', r'attempt_record'),
 ('attempt log (batch+encode+produce)', r'attempt_log'),
 ('api history follower', r'hookline_api'),
 ('offset tracker', r'OffsetTracker|watermark'),
 ('record copy (OwnedRecord)', r'OwnedRecord::from_message'),
 ('delivery decode', r'Delivery as prost|Delivery::decode|v1::Delivery'),
 ('breaker/endpoint runtime', r'EndpointRuntime|endpoints::'),
 ('recent pairs', r'RecentDeliveries|recent::'),
 ('metrics', r'metrics::|metrics_exporter|Histogram|Counter'),
 ('tracing', r'tracing::|tracing_core|tracing_subscriber'),
 ('timeout/timer', r'tokio::time|timer::'),
 ('http write (hyper flush/encode)', r'poll_flush|Http1Transaction>::encode|write_vectored'),
 ('http read (hyper parse/read)', r'poll_read|Http1Transaction>::parse|read_mem|poll_read_from_io'),
 ('hyper pool/checkout', r'legacy::pool|Checkout'),
 ('hyper client send', r'send_request|try_send_request|dispatch::Sender'),
 ('hyper conn task other', r'hyper::proto|hyper::client'),
 ('router', r'hookline_router'),
 ('kafka enqueue/producev', r'kafka::enqueue|rd_kafka_producev|BaseProducer'),
 ('intake/consume', r'intake::|hookline_runtime::consume|StreamConsumer|rd_kafka_consumer|MessageStream'),
 ('workers dispatch', r'workers::Workers::dispatch|workers::run'),
 ('sender deliver other', r'hookline_sender'),
 ('librdkafka other', r'rd_kafka|rdkafka'),
 ('tokio scheduler', r'tokio::runtime|tokio::sync'),
]
rules=[(n,re.compile(p)) for n,p in rules]
comm_filter=sys.argv[2] if len(sys.argv)>2 else None
cnt=collections.Counter(); total=0; kernel=collections.Counter()
def flush(comm,stack):
    global total
    if not stack: return
    if comm_filter and comm!=comm_filter: return
    total+=1
    cat='other'
    for fr in stack:
        for n,r in rules:
            if r.search(fr): cat=n; break
        else: continue
        break
    cnt[cat]+=1
    if stack and re.match(r'^ffffffff',stack[0][0] if False else ''): pass
comm=None; stack=[]
for line in open(sys.argv[1]):
    if not line.startswith('\t') and not line.startswith(' '*8):
        if line.strip()=='' : continue
        flush(comm,stack); comm=line.split()[0] if line.split() else ''; stack=[]
    else:
        parts=line.strip().split(None,1)
        if len(parts)==2: stack.append(parts[1])
flush(comm,stack)
for k,v in cnt.most_common(): print(f"{100*v/total:5.1f}%  {k}")
print("samples",total)
