// Golden-frame scenario (tests/golden/clients/scenario.py) with the Java client (kafka-clients),
// plus what only this client makes easy: a transactional producer and a consumer on the KIP-848
// group protocol (group.protocol=consumer).
//
//   javac -d build -cp 'libs/*' GoldenClient.java
//   java -cp 'build:libs/*' GoldenClient 127.0.0.1:9092 java
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.header.internals.RecordHeader;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public final class GoldenClient {
    static final String[] CODECS = {"none", "gzip", "snappy", "lz4", "zstd"};
    static final long DEADLINE_MS = 60_000;
    static final long HEARTBEAT_WAIT_MS = 4_000;

    private GoldenClient() {}

    static byte[] b(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    /** The three records of scenario.RECORDS, for one topic. */
    static List<ProducerRecord<byte[], byte[]>> records(String topic) {
        List<ProducerRecord<byte[], byte[]>> out = new ArrayList<>();
        ProducerRecord<byte[], byte[]> first = new ProducerRecord<>(topic, b("key-1"), b("golden value one ".repeat(4)));
        first.headers().add(new RecordHeader("h1", b("header-one"))).add(new RecordHeader("h-empty", new byte[0]));
        ProducerRecord<byte[], byte[]> second = new ProducerRecord<>(topic, b("key-2"), null);
        second.headers().add(new RecordHeader("h-null", (byte[]) null));
        out.add(first);
        out.add(second);
        out.add(new ProducerRecord<>(topic, null, b("golden value three ".repeat(4))));
        return out;
    }

    static List<String> topics(String prefix) {
        List<String> out = new ArrayList<>();
        for (String codec : CODECS) {
            out.add(prefix + "-" + codec);
        }
        return out;
    }

    static void admin(String bootstrap, String prefix) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(props)) {
            List<NewTopic> created = new ArrayList<>();
            for (String topic : topics(prefix)) {
                created.add(new NewTopic(topic, 1, (short) 1));
            }
            created.add(new NewTopic(prefix + "-tmp", 1, (short) 1));
            created.add(new NewTopic(prefix + "-txn", 1, (short) 1));
            admin.createTopics(created).all().get(30, TimeUnit.SECONDS);
            ConfigResource none = new ConfigResource(ConfigResource.Type.TOPIC, prefix + "-none");
            admin.describeConfigs(List.of(none)).all().get(30, TimeUnit.SECONDS);
            admin.deleteTopics(List.of(prefix + "-tmp")).all().get(30, TimeUnit.SECONDS);
        }
    }

    static Properties producerProps(String bootstrap, String codec) {
        Properties props = new Properties();
        props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ProducerConfig.COMPRESSION_TYPE_CONFIG, codec);
        props.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        props.put(ProducerConfig.ACKS_CONFIG, "all");
        props.put(ProducerConfig.LINGER_MS_CONFIG, "20");
        props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        return props;
    }

    static void produce(String bootstrap, String prefix) throws Exception {
        for (String codec : CODECS) {
            try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(producerProps(bootstrap, codec))) {
                List<java.util.concurrent.Future<?>> sent = new ArrayList<>();
                for (ProducerRecord<byte[], byte[]> record : records(prefix + "-" + codec)) {
                    sent.add(producer.send(record));
                }
                producer.flush();
                for (java.util.concurrent.Future<?> f : sent) {
                    f.get(30, TimeUnit.SECONDS);
                }
            }
        }
    }

    /** One committed transaction with one record to PREFIX-txn (AddPartitionsToTxn, EndTxn, ...). */
    static void produceTransactional(String bootstrap, String prefix) {
        Properties props = producerProps(bootstrap, "none");
        props.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, prefix + "-txn-id");
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(props)) {
            producer.initTransactions();
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(prefix + "-txn", b("txn-key"), b("txn-value")));
            producer.commitTransaction();
        }
    }

    static Properties consumerProps(String bootstrap, String group, String protocol) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        props.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        return props;
    }

    /** Reads `expected` records of the topics, commits, keeps polling a while; returns the count. */
    static int consume(Properties props, List<String> topics, int expected) {
        int count = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(props)) {
            consumer.subscribe(topics);
            long deadline = System.currentTimeMillis() + DEADLINE_MS;
            while (count < expected && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<byte[], byte[]> record : consumer.poll(Duration.ofMillis(500))) {
                    count++;
                }
            }
            consumer.commitSync();
            long end = System.currentTimeMillis() + HEARTBEAT_WAIT_MS;
            while (System.currentTimeMillis() < end) {
                consumer.poll(Duration.ofMillis(200));
            }
        }
        return count;
    }

    static void check(String what, int got, int expected) {
        if (got != expected) {
            throw new IllegalStateException(what + ": consumed " + got + " records, expected " + expected);
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String prefix = args[1];
        int perTopic = records("x").size();
        admin(bootstrap, prefix);
        produce(bootstrap, prefix);
        produceTransactional(bootstrap, prefix);
        List<String> all = topics(prefix);
        check("classic group", consume(consumerProps(bootstrap, prefix + "-group", "classic"), all,
              perTopic * CODECS.length), perTopic * CODECS.length);
        check("consumer group", consume(consumerProps(bootstrap, prefix + "-group848", "consumer"),
              Collections.singletonList(prefix + "-none"), perTopic), perTopic);
    }
}
