"""Browser tests of the Prefect UI path (headless Chromium, loopback only)."""
