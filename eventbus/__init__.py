"""The shared plumbing every service stands on: contracts, envelope, Kafka,
SQLite store, outbox, ledger and the one consumer loop."""
