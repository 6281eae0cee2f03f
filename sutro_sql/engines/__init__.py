"""Engines that evaluate local Functions: `embedded` (offline, CPU) and `openai:<model>`."""
