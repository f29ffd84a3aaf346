"""One script per study of the course; see experiments/README.md."""
