"""choreograph: Kafka-native event choreography."""

__version__ = "0.1.0"
