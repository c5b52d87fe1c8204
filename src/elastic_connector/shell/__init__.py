"""The imperative shell: OpenCTI stream, Elasticsearch, threads, clocks, retries, config files."""
