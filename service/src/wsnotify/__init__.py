"""wsnotify: WebSocket notifications with JWT auth, PostgreSQL persistence and Redis fan-out."""

__version__ = "1.0.0"
