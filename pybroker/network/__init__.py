"""Listeners and connections: size-prefixed frames in, ordered responses out."""
