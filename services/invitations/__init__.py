"""The invitations service."""
