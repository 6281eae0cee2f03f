"""Backends: where Functions run. One protocol (base.Backend), two implementations."""
