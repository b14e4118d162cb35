"""Routing: classification, routing rules, the first-line filter and assignment."""
