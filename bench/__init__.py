"""Benchmarks that run against a real stack (embedded PostgreSQL, services, Envoy)."""
