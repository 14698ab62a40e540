"""Domain operations that jobs, the CLI, the Python API and serve call; each takes a Session."""
