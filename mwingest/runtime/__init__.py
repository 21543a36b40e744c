"""How Prefect runs on this machine: the local server, its settings, the warm runner's protocol and
the crash automations. Above the core; below tasks/ and flows/."""
