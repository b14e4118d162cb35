"""Channels: how messages reach customers. Ingestion and the outbox live here."""
