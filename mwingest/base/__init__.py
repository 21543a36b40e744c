"""The base layer: errors, items, options, retry, redaction, paths; imports nothing else of mwingest."""
