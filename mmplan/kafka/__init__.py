"""Talking to Kafka: client settings, a thin admin client, and `doctor`'s checks."""
