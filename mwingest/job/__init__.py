"""A file's journey: the per-file state machine over its ledger row, its context, decisions, recovery,
and the split of a batch into shards."""
