"""Shared contracts of the Balcão services: config, event catalogue, messaging plumbing,
keys and session tokens, the base web layer. Nothing domain-specific lives here."""
