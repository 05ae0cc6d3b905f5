// Prints the wire schemas that Apache Kafka's own client library compiles from its message specs,
// for every API and version it knows, so tests/protocol/test_java_schemas.py can compare them with
// our definitions. Run with the Kafka jars on the class path:
//
//   java -cp '<libs>/*' tests/protocol/DumpSchemas.java
//
// Output, one record per line, tab-separated:
//   API  <key> <Name> <lowest> <highest incl. unstable> <latestVersionUnstable> <listeners,...>
//   MSG  <request|response|header|data> <Name> <version> [<request header v> <response header v>]
//   F    <depth> <field name> <type> <tag or ->
// where <type> is the primitive's wire name (INT32, COMPACT_NULLABLE_STRING, ...), STRUCT or
// NULLABLE_STRUCT (followed by its fields at depth+1), or ARRAY/COMPACT_ARRAY[?](element type).
// Tagged fields are listed after the struct's fields with their tag number.
import java.util.Map;
import java.util.Optional;
import java.util.StringJoiner;

import org.apache.kafka.common.message.ApiMessageType;
import org.apache.kafka.common.message.ConsumerProtocolAssignment;
import org.apache.kafka.common.message.ConsumerProtocolSubscription;
import org.apache.kafka.common.message.RequestHeaderData;
import org.apache.kafka.common.message.ResponseHeaderData;
import org.apache.kafka.common.protocol.types.BoundField;
import org.apache.kafka.common.protocol.types.Field;
import org.apache.kafka.common.protocol.types.NullableSchema;
import org.apache.kafka.common.protocol.types.Schema;
import org.apache.kafka.common.protocol.types.TaggedFields;
import org.apache.kafka.common.protocol.types.Type;

public class DumpSchemas {
    public static void main(String[] args) {
        StringBuilder out = new StringBuilder();
        for (ApiMessageType api : ApiMessageType.values()) {
            dumpApi(out, api);
        }
        dumpData(out, "header", "RequestHeader", RequestHeaderData.SCHEMAS,
                 RequestHeaderData.LOWEST_SUPPORTED_VERSION);
        dumpData(out, "header", "ResponseHeader", ResponseHeaderData.SCHEMAS,
                 ResponseHeaderData.LOWEST_SUPPORTED_VERSION);
        dumpData(out, "data", "ConsumerProtocolSubscription",
                 ConsumerProtocolSubscription.SCHEMAS,
                 ConsumerProtocolSubscription.LOWEST_SUPPORTED_VERSION);
        dumpData(out, "data", "ConsumerProtocolAssignment", ConsumerProtocolAssignment.SCHEMAS,
                 ConsumerProtocolAssignment.LOWEST_SUPPORTED_VERSION);
        System.out.print(out);
    }

    static void dumpApi(StringBuilder out, ApiMessageType api) {
        short lo = api.lowestSupportedVersion();
        short hi = api.highestSupportedVersion(true);
        StringJoiner listeners = new StringJoiner(",");
        api.listeners().forEach(l -> listeners.add(l.name().toLowerCase()));
        out.append("API\t").append(api.apiKey()).append('\t').append(pascal(api.name()))
           .append('\t').append(lo).append('\t').append(hi)
           .append('\t').append(api.latestVersionUnstable())
           .append('\t').append(listeners).append('\n');
        String name = pascal(api.name());
        for (short v = lo; v <= hi; v++) {
            String tail = "\t" + v + "\t" + api.requestHeaderVersion(v)
                + "\t" + api.responseHeaderVersion(v) + "\n";
            out.append("MSG\trequest\t").append(name).append(tail);
            dumpSchema(out, api.requestSchemas()[v], 0);
            out.append("MSG\tresponse\t").append(name).append(tail);
            dumpSchema(out, api.responseSchemas()[v], 0);
        }
    }

    static void dumpData(StringBuilder out, String kind, String name, Schema[] schemas, short lo) {
        for (int v = lo; v < schemas.length; v++) {
            out.append("MSG\t").append(kind).append('\t').append(name)
               .append('\t').append(v).append('\n');
            dumpSchema(out, schemas[v], 0);
        }
    }

    static void dumpSchema(StringBuilder out, Schema schema, int depth) {
        for (BoundField bf : schema.fields()) {
            Field f = bf.def;
            if (f.type instanceof TaggedFields) {
                for (Map.Entry<Integer, Field> e : ((TaggedFields) f.type).fields().entrySet()) {
                    dumpField(out, e.getValue(), depth, String.valueOf(e.getKey()));
                }
            } else {
                dumpField(out, f, depth, "-");
            }
        }
    }

    static void dumpField(StringBuilder out, Field f, int depth, String tag) {
        out.append("F\t").append(depth).append('\t').append(f.name).append('\t')
           .append(describe(f.type)).append('\t').append(tag).append('\n');
        Schema nested = structOf(f.type);
        if (nested != null) {
            dumpSchema(out, nested, depth + 1);
        }
    }

    static Schema structOf(Type t) {
        Optional<Type> elem = t.arrayElementType();
        Type inner = elem.isPresent() ? elem.get() : t;
        return inner instanceof Schema ? (Schema) inner : null;
    }

    static String describe(Type t) {
        Optional<Type> elem = t.arrayElementType();
        if (elem.isPresent()) {
            boolean compact = t.getClass().getSimpleName().equals("CompactArrayOf");
            String kind = compact ? "COMPACT_ARRAY" : "ARRAY";
            return kind + (t.isNullable() ? "?" : "") + "(" + describe(elem.get()) + ")";
        }
        if (t instanceof NullableSchema) {
            return "NULLABLE_STRUCT";
        }
        if (t instanceof Schema) {
            return "STRUCT";
        }
        return ((Type.DocumentedType) t).typeName();
    }

    static String pascal(String enumName) {
        StringBuilder b = new StringBuilder();
        for (String part : enumName.split("_")) {
            b.append(part.charAt(0)).append(part.substring(1).toLowerCase());
        }
        return b.toString();
    }
}
