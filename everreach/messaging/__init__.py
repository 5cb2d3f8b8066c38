"""Messenger, Instagram Direct and WhatsApp conversations (no Dagster, no ASGI stack)."""
