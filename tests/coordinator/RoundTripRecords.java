// Reads "<key hex> <value hex or ->" lines on stdin, parses each record with Apache Kafka's own
// GroupCoordinatorRecordSerde (from the kafka-group-coordinator jar), serializes it again with
// Kafka's serde and prints "<key hex> <value hex or -> TAB <Kafka's toString>" — so a test can
// check that our __consumer_offsets records are byte for byte what Kafka writes and reads.
// Run: java -cp '<kafka libs>/*' RoundTripRecords.java
import java.io.BufferedReader;
import java.io.InputStreamReader;
import java.nio.ByteBuffer;
import java.util.HexFormat;

import org.apache.kafka.coordinator.common.runtime.CoordinatorRecord;
import org.apache.kafka.coordinator.group.GroupCoordinatorRecordSerde;

public class RoundTripRecords {
    public static void main(String[] args) throws Exception {
        GroupCoordinatorRecordSerde serde = new GroupCoordinatorRecordSerde();
        HexFormat hex = HexFormat.of();
        BufferedReader in = new BufferedReader(new InputStreamReader(System.in));
        String line;
        while ((line = in.readLine()) != null) {
            String[] parts = line.trim().split(" ");
            byte[] key = hex.parseHex(parts[0]);
            byte[] value = parts[1].equals("-") ? null : hex.parseHex(parts[1]);
            CoordinatorRecord record = serde.deserialize(ByteBuffer.wrap(key),
                value == null ? null : ByteBuffer.wrap(value));
            byte[] key2 = serde.serializeKey(record);
            byte[] value2 = serde.serializeValue(record);
            System.out.println(hex.formatHex(key2) + " " + (value2 == null ? "-" : hex.formatHex(value2))
                + "\t" + record);
        }
    }
}
