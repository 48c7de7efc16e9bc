"""Versioned events on Kafka and the merge topology that feeds the fold of :mod:`conflict`."""
