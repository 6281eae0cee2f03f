"""Deployment-level calls (v1 §5.10, §5.11) and the backend's life cycle, on every backend."""

from __future__ import annotations

import pytest

from sutro_sql.backends.base import Backend


def test_every_backend_implements_the_protocol(backend):
    assert isinstance(backend, Backend)
    assert backend.identity and "sk_" not in backend.identity


def test_quotas_are_indexed_by_priority(backend):
    quotas = backend.get_quotas()
    assert len(quotas) == 2
    assert all(set(quota) == {"row_quota", "token_quota"} for quota in quotas)
    assert all(isinstance(value, int) and value > 0 for quota in quotas for value in quota.values())


def test_the_key_checks_out(backend):
    assert backend.check_auth() is True


def test_a_closed_backend_refuses_work_and_closing_again_is_harmless(backend):
    backend.close()
    with pytest.raises(RuntimeError, match="closed"):
        backend.submit_batch("ticket-triage", [{"subject": "a", "body": "b"}])
    backend.close()
