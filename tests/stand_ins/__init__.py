"""Stand-ins for servers that cannot run on a CPU-only test machine (named as such; tests only)."""
