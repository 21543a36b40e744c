"""The durable ledger: one row per file as a state machine, on SQLite or PostgreSQL; leases, pacing
buckets and plans live in the same database."""
