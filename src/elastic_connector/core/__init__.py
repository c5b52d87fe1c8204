"""The functional core: pure, typed functions from STIX stream events to ECS documents and from
Elastic alerts to sightings. Imports only the standard library, msgspec and returns; no I/O,
clock, randomness, logging or threads (time is always an argument)."""
