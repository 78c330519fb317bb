package dev.choreograph.interop;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import io.cloudevents.CloudEvent;
import io.cloudevents.core.builder.CloudEventBuilder;
import io.cloudevents.kafka.CloudEventSerializer;
import java.io.ByteArrayOutputStream;
import java.io.DataOutputStream;
import java.io.File;
import java.math.BigDecimal;
import java.net.URI;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.UUID;
import org.apache.avro.Conversions;
import org.apache.avro.Schema;
import org.apache.avro.data.TimeConversions;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericDatumWriter;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryEncoder;
import org.apache.avro.io.EncoderFactory;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * A Java shop placing orders: the Kafka client's default partitioner, CloudEvents in binary
 * mode with only the required attributes, and an Avro body in the registry's wire format.
 *
 * <p>Usage: ProduceOrders BOOTSTRAP REGISTRY_URL TOPIC ORDERS_JSON. Prints one JSON line per
 * order: its id, the partition the client chose and the event id.
 */
public final class ProduceOrders {
  private static final String TYPE = "com.acme.orders.OrderPlaced";

  public static void main(String[] args) throws Exception {
    String bootstrap = args[0];
    String topic = args[2];
    Registry registry = new Registry(args[1]);
    Map.Entry<Integer, Schema> latest = registry.latest(Registry.subject(topic, TYPE));
    Schema schema = latest.getValue();
    GenericData model = new GenericData();
    model.addLogicalTypeConversion(new Conversions.DecimalConversion());
    model.addLogicalTypeConversion(new TimeConversions.TimestampMillisConversion());
    GenericDatumWriter<GenericRecord> writer = new GenericDatumWriter<>(schema, model);

    Properties props = new Properties();
    props.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ProducerConfig.ACKS_CONFIG, "all");
    props.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
    props.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, CloudEventSerializer.class.getName());
    // No partitioner set: the Java client's default (murmur2 of the key).

    ObjectMapper json = new ObjectMapper();
    JsonNode orders = json.readTree(new File(args[3]));
    List<String> lines = new ArrayList<>();
    try (KafkaProducer<String, CloudEvent> producer = new KafkaProducer<>(props)) {
      for (JsonNode order : orders) {
        GenericRecord record = new GenericData.Record(schema);
        record.put("order_id", order.get("order_id").asText());
        record.put("customer_id", order.get("customer_id").asText());
        record.put("customer_email", order.get("customer_email").asText());
        Schema lineSchema = schema.getField("lines").schema().getElementType();
        List<GenericRecord> items = new ArrayList<>();
        for (JsonNode line : order.get("lines")) {
          GenericRecord item = new GenericData.Record(lineSchema);
          item.put("sku", line.get("sku").asText());
          item.put("quantity", line.get("quantity").asInt());
          items.add(item);
        }
        record.put("lines", items);
        record.put("total", new BigDecimal(order.get("total").asText()).setScale(2));
        record.put("currency", "EUR");
        record.put("placed_at", Instant.ofEpochMilli(order.get("placed_at_ms").asLong()));

        ByteArrayOutputStream bytes = new ByteArrayOutputStream();
        DataOutputStream framed = new DataOutputStream(bytes);
        framed.writeByte(0); // Confluent wire format: magic byte, schema id, Avro binary
        framed.writeInt(latest.getKey());
        BinaryEncoder encoder = EncoderFactory.get().binaryEncoder(bytes, null);
        writer.write(record, encoder);
        encoder.flush();

        String id = UUID.randomUUID().toString();
        CloudEvent event =
            CloudEventBuilder.v1()
                .withId(id)
                .withSource(URI.create("/java/shop"))
                .withType(TYPE)
                .withDataContentType("application/avro")
                .withData(bytes.toByteArray())
                .build();
        String key = order.get("order_id").asText();
        RecordMetadata sent = producer.send(new ProducerRecord<>(topic, key, event)).get();
        lines.add(json.writeValueAsString(
            Map.of("order_id", key, "partition", sent.partition(), "ce_id", id)));
      }
    }
    lines.forEach(System.out::println);
  }
}
