"""Demo and test utilities only (a local OpenCTI stand-in, sample data); never used by `run`."""
