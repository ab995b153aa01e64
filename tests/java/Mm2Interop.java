// What MirrorMaker 2's own client library says about a cluster, as one JSON object on stdout.
// Usage: java -cp <kafka jars>:<dir> Mm2Interop BOOTSTRAP SOURCE_ALIAS GROUP HEARTBEATS_TOPIC
//   offsets:           RemoteClusterUtils.translateOffsets(BOOTSTRAP, SOURCE_ALIAS, GROUP)
//   upstream_clusters: RemoteClusterUtils.upstreamClusters(BOOTSTRAP)
//   hops:              RemoteClusterUtils.replicationHops(BOOTSTRAP, SOURCE_ALIAS)
//   heartbeats:        the last records of HEARTBEATS_TOPIC decoded with Heartbeat.deserializeRecord
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.TreeSet;

import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.connect.mirror.Heartbeat;
import org.apache.kafka.connect.mirror.RemoteClusterUtils;

public class Mm2Interop {
    private static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0], source = args[1], group = args[2], heartbeatsTopic = args[3];
        Map<String, Object> props = new HashMap<>();
        props.put("bootstrap.servers", bootstrap);

        Map<TopicPartition, OffsetAndMetadata> offsets =
            RemoteClusterUtils.translateOffsets(props, source, group, Duration.ofSeconds(20));
        List<String> rows = new ArrayList<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : offsets.entrySet()) {
            rows.add("{\"topic\":" + quote(e.getKey().topic()) + ",\"partition\":" + e.getKey().partition()
                + ",\"offset\":" + e.getValue().offset() + "}");
        }
        Set<String> upstream = new TreeSet<>(RemoteClusterUtils.upstreamClusters(props));
        List<String> ups = new ArrayList<>();
        for (String u : upstream) ups.add(quote(u));
        int hops = RemoteClusterUtils.replicationHops(props, source);

        List<String> beats = new ArrayList<>();
        Map<String, Object> consumerProps = new HashMap<>(props);
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerProps,
                new ByteArrayDeserializer(), new ByteArrayDeserializer())) {
            TopicPartition tp = new TopicPartition(heartbeatsTopic, 0);
            List<TopicPartition> assignment = List.of(tp);
            consumer.assign(assignment);
            long end = consumer.endOffsets(assignment).get(tp);
            consumer.seek(tp, Math.max(0, end - 5));
            long deadline = System.currentTimeMillis() + 20000;
            while (consumer.position(tp) < end && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    Heartbeat hb = Heartbeat.deserializeRecord(r);
                    beats.add("{\"source\":" + quote(hb.sourceClusterAlias()) + ",\"target\":"
                        + quote(hb.targetClusterAlias()) + ",\"timestamp\":" + hb.timestamp()
                        + ",\"record_timestamp\":" + r.timestamp() + "}");
                }
            }
        }
        System.out.println("{\"offsets\":[" + String.join(",", rows) + "],\"upstream_clusters\":["
            + String.join(",", ups) + "],\"hops\":" + hops + ",\"heartbeats\":[" + String.join(",", beats) + "]}");
    }
}
