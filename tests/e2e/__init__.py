"""The product as a user runs it: `authq up`, the compose file, the benchmark command."""
