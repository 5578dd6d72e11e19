"""The inbox service: the unified inbox over every bound mailbox (read model fed by Kafka, HTTP API, SSE)."""
