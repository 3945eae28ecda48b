"""Each public module's ``__all__`` is exactly its public surface (httpx's check, shared kit)."""

from astrid_core.testing import public_surface_problems


def test_all_names_exactly_the_public_surface() -> None:
    assert public_surface_problems("astrid_crypto") == []
