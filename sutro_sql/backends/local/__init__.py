"""The embedded local deployment: Function specs on disk, a persistent SQLite job store,
a worker pool and engines. `LocalBackend` implements the Backend protocol."""

from .backend import LocalBackend

__all__ = ["LocalBackend"]
