"""A fresh store in the test's own LIGHTBOX_HOME, as the store tests have it."""

from tests.store.conftest import store

__all__ = ["store"]
