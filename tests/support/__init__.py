"""Test harness: real tools and services started per test run (never assumed running)."""
