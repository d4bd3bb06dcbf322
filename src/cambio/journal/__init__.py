"""Durable storage of the command stream: the journal (segments) and engine snapshots."""
