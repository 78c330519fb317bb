package dev.choreograph.interop;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import java.io.IOException;
import java.net.URI;
import java.net.URLEncoder;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import org.apache.avro.Schema;

/** The schema registry's Confluent-compatible REST API, as any non-Python producer reads it. */
final class Registry {
  private static final ObjectMapper JSON = new ObjectMapper();
  private final String url;
  private final HttpClient http = HttpClient.newHttpClient();
  private final Map<Integer, Schema> byId = new HashMap<>();
  private final Map<Integer, List<String>> subjectsById = new HashMap<>();

  Registry(String url) {
    this.url = url.replaceAll("/+$", "");
  }

  private JsonNode get(String path) throws IOException, InterruptedException {
    HttpRequest request = HttpRequest.newBuilder(URI.create(url + path)).GET().build();
    HttpResponse<String> reply = http.send(request, HttpResponse.BodyHandlers.ofString());
    if (reply.statusCode() != 200) {
      throw new IOException("GET " + path + " answered " + reply.statusCode() + ": " + reply.body());
    }
    return JSON.readTree(reply.body());
  }

  /** Subject naming: TopicRecordNameStrategy, "<topic>-<record full name>". */
  static String subject(String topic, String fullName) {
    return topic + "-" + fullName;
  }

  /** The latest schema of a subject: its id and the parsed schema. */
  Map.Entry<Integer, Schema> latest(String subject) throws IOException, InterruptedException {
    JsonNode node = get("/subjects/" + URLEncoder.encode(subject, StandardCharsets.UTF_8) + "/versions/latest");
    return Map.entry(node.get("id").asInt(), new Schema.Parser().parse(node.get("schema").asText()));
  }

  Schema schema(int id) throws IOException, InterruptedException {
    Schema found = byId.get(id);
    if (found == null) {
      found = new Schema.Parser().parse(get("/schemas/ids/" + id).get("schema").asText());
      byId.put(id, found);
    }
    return found;
  }

  List<String> subjects(int id) throws IOException, InterruptedException {
    List<String> found = subjectsById.get(id);
    if (found == null) {
      found = new ArrayList<>();
      for (JsonNode version : get("/schemas/ids/" + id + "/versions")) {
        found.add(version.get("subject").asText());
      }
      subjectsById.put(id, found);
    }
    return found;
  }
}
