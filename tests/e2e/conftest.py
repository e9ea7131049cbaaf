"""Fixtures every end-to-end module shares: ``spawn`` starts ``zdsync run`` processes."""

from tests.e2e.test_daemon import spawn  # noqa: F401 (a fixture)
