"""The documents service (Documentos): see the README."""
