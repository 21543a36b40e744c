"""The ``mwingest`` command (typer), its output and progress, the demo and the warm runner's side."""
