"""Suite-wide test settings."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

# "ci": thorough and reproducible enough for every push; "dev": quick local loops;
# "deep": long fuzzing runs (HYPOTHESIS_PROFILE=deep nox -s tests).
settings.register_profile(
    "ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("dev", max_examples=50, deadline=None)
settings.register_profile(
    "deep", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck)
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

# Elasticsearch fixtures (elasticsearch_url, es_client, es_prefix, faulty_proxy, ...) and the
# `real_cluster` skip rule live in tests/support/elasticsearch.py.
pytest_plugins = ["tests.support.elasticsearch", "tests.support.opencti"]
