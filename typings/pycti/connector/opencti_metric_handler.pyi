class OpenCTIMetricHandler:
    """Opaque: only passed back to pycti."""
