#!/bin/bash
# Fan-out across two wspush nodes: subscribers on node 1 (127.0.0.1:7791), publisher on node 2
# (127.0.0.1:7792), through Redis (127.0.0.1:6399) or NATS (127.0.0.1:4233), or one memory node.
# Start redis-server --port 6399 / nats-server -a 127.0.0.1 -p 4233 first; build with make build.
# usage: cluster.sh memory|redis|nats "bench fanout args"
B=$1; ARGS=$2
case $B in
 redis) BA="--broker redis --redis-url redis://127.0.0.1:6399";;
 nats) BA="--broker nats --nats-url nats://127.0.0.1:4233";;
 memory) BA="";;
esac
${WSPUSH:-./bin/wspush} serve --addr 127.0.0.1:7791 --api-key k $BA > /tmp/n1.log 2>&1 &
P1=$!; P2=$P1; API=7791
if [ $B != memory ]; then ${WSPUSH:-./bin/wspush} serve --addr 127.0.0.1:7792 --api-key k $BA > /tmp/n2.log 2>&1 & P2=$!; API=7792; fi
sleep 1
cpu() { awk '{print $14+$15}' /proc/$1/stat; }
c1=$(cpu $P1); c2=$(cpu $P2)
${WSPUSH:-./bin/wspush} bench fanout --url ws://127.0.0.1:7791/ws --api http://127.0.0.1:$API/api/publish --api-key k $ARGS --json 2>/dev/null > ${TMPDIR:-/tmp}/cluster-bench.json
d1=$(( $(cpu $P1) - c1 )); d2=$(( $(cpu $P2) - c2 )); [ $P1 = $P2 ] && d2=0
python3 - "$B" "$d1" "$d2" <<'PY'
import json,sys
d=json.load(open('${TMPDIR:-/tmp}/cluster-bench.json')); b,c1,c2=sys.argv[1],int(sys.argv[2])/100,int(sys.argv[3])/100
print(f"{b}: published {d['publish']['published']} delivered {d['delivery']['delivered']} lost {d['delivery']['lost']} dup {d['delivery']['duplicates']} deliveries/s {d['delivery']['per_second']:.0f} p50 {d['latency']['p50_ms']:.2f} p99 {d['latency']['p99_ms']:.2f} ms; cpu sub-node {c1:.2f}s pub-node {c2:.2f}s; deliveries per node-cpu-s {d['delivery']['delivered']/max(c1+c2,0.01):.0f}")
PY
kill $P1 $P2 2>/dev/null; wait $P1 $P2 2>/dev/null
