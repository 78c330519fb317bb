package dev.choreograph.interop;

import com.fasterxml.jackson.databind.ObjectMapper;
import io.cloudevents.CloudEvent;
import io.cloudevents.kafka.CloudEventDeserializer;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeMap;
import org.apache.avro.Schema;
import org.apache.avro.generic.GenericDatumReader;
import org.apache.avro.generic.GenericRecord;
import org.apache.avro.io.BinaryDecoder;
import org.apache.avro.io.DecoderFactory;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringDeserializer;

/**
 * Reads what choreograph services and the saga tracker wrote, as a Java consumer would, and checks
 * every record whose key contains MARK: a valid CloudEvent for the SDK's Kafka deserializer (binary
 * mode), header names and values as the Kafka binding says, and an Avro body in the registry's
 * wire format whose writer schema is the event's type, registered under "<topic>-<type>", that
 * Apache Avro decodes in full. Records of the Java shop itself (ProduceOrders) are left out.
 *
 * <p>Usage: CheckRecords BOOTSTRAP REGISTRY_URL MARK TOPIC... Prints a JSON report per topic.
 */
public final class CheckRecords {
  private static final String SHOP = "/java/shop"; // ProduceOrders' source
  private static final Set<String> OTHER_HEADERS = Set.of("content-type", "traceparent", "tracestate");

  public static void main(String[] args) throws Exception {
    Registry registry = new Registry(args[1]);
    String mark = args[2];
    Map<String, Object> report = new TreeMap<>();
    for (int i = 3; i < args.length; i++) {
      report.put(args[i], check(args[0], registry, mark, args[i]));
    }
    System.out.println(new ObjectMapper().writeValueAsString(report));
  }

  private static Map<String, Object> check(String bootstrap, Registry registry, String mark, String topic)
      throws Exception {
    Properties props = new Properties();
    props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
    props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
    props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
    props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
    props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
    CloudEventDeserializer cloudEvents = new CloudEventDeserializer();
    cloudEvents.configure(Map.of(), false);
    int records = 0;
    Map<String, Integer> types = new TreeMap<>();
    List<String> failures = new ArrayList<>();
    try (KafkaConsumer<String, byte[]> consumer = new KafkaConsumer<>(props)) {
      List<TopicPartition> partitions = new ArrayList<>();
      consumer.partitionsFor(topic).forEach(p -> partitions.add(new TopicPartition(topic, p.partition())));
      consumer.assign(partitions);
      consumer.seekToBeginning(partitions);
      Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
      while (partitions.stream().anyMatch(p -> consumer.position(p) < end.get(p))) {
        for (ConsumerRecord<String, byte[]> record : consumer.poll(Duration.ofMillis(500))) {
          if (record.key() == null || !record.key().contains(mark)) {
            continue;
          }
          if (producer(record)) {
            continue; // the Java shop's own orders: not written by choreograph
          }
          records++;
          String where = topic + "[" + record.partition() + "]@" + record.offset();
          try {
            CloudEvent event = cloudEvents.deserialize(topic, record.headers(), record.value());
            types.merge(event.getType(), 1, Integer::sum);
            String problem = problem(registry, topic, record, event);
            if (problem != null) {
              failures.add(where + ": " + problem);
            }
          } catch (RuntimeException err) {
            failures.add(where + ": not a CloudEvent for the Java SDK: " + err);
          }
        }
      }
    }
    Map<String, Object> result = new LinkedHashMap<>();
    result.put("records", records);
    result.put("types", types);
    result.put("failures", failures.subList(0, Math.min(failures.size(), 20)));
    result.put("failed", failures.size());
    return result;
  }

  private static boolean producer(ConsumerRecord<String, byte[]> record) {
    Header source = record.headers().lastHeader("ce_source");
    return source != null && SHOP.equals(new String(source.value(), StandardCharsets.UTF_8));
  }

  private static String problem(
      Registry registry, String topic, ConsumerRecord<String, byte[]> record, CloudEvent event)
      throws Exception {
    for (Header header : record.headers()) {
      String name = header.key();
      if (!name.startsWith("ce_") && !OTHER_HEADERS.contains(name)) {
        return "unexpected header " + name;
      }
      try {
        StandardCharsets.UTF_8.newDecoder().decode(ByteBuffer.wrap(header.value()));
      } catch (CharacterCodingException err) {
        return "header " + name + " is not UTF-8";
      }
      if (name.startsWith("ce_") && !name.substring(3).matches("[a-z0-9]+")) {
        return "header " + name + " is not a CloudEvents attribute name";
      }
    }
    if (event.getId().isEmpty() || event.getSource() == null || event.getTime() == null) {
      return "id, source and time must be set";
    }
    if (!"application/avro".equals(event.getDataContentType())) {
      return "datacontenttype is " + event.getDataContentType();
    }
    if (event.getExtension("correlationid") == null) {
      return "no correlationid extension";
    }
    byte[] data = event.getData() == null ? null : event.getData().toBytes();
    if (data == null || data.length < 5 || data[0] != 0) {
      return "body is not in the registry's wire format";
    }
    int id = ByteBuffer.wrap(data, 1, 4).getInt();
    Schema schema = registry.schema(id);
    if (!schema.getFullName().equals(event.getType())) {
      return "writer schema " + schema.getFullName() + " is not the type " + event.getType();
    }
    String subject = Registry.subject(topic, event.getType());
    if (!registry.subjects(id).contains(subject)) {
      return "schema id " + id + " is not registered under " + subject;
    }
    BinaryDecoder decoder = DecoderFactory.get().binaryDecoder(data, 5, data.length - 5, null);
    GenericRecord decoded = new GenericDatumReader<GenericRecord>(schema).read(null, decoder);
    if (!decoder.isEnd()) {
      return "bytes left after the Avro body";
    }
    return decoded == null ? "empty body" : null;
  }
}
