"""The runtime on a state directory that disappears: the next action is refused, status says why."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from astrid_core import ApprovalOption, StorageError

from .conftest import Human, collect, open_runtime, turns

pytestmark = pytest.mark.anyio


async def test_rm_rf_state_while_running_refuses_the_next_action(
    tmp_path: Path, workspace: Path
) -> None:
    script = turns(
        ("Deleting.", [("delete_file", {"path": "old.log"})]),
        ("Done.", []),
    )
    runtime = await open_runtime(tmp_path, script)
    runtime.set_frontend(Human([ApprovalOption.ALLOW_ONCE]))  # type: ignore[arg-type]
    try:
        info = await runtime.create_session(str(workspace))
        shutil.rmtree(tmp_path / "home" / "state")
        with pytest.raises(StorageError, match="was deleted while the daemon ran"):
            await collect(runtime, info.session_id, "delete old.log")
        assert (workspace / "old.log").exists()  # the action never ran
        status = await runtime.status()
        assert any("was deleted" in warning for warning in status.warnings), status.warnings
    finally:
        with pytest.raises(StorageError, match="deleted"):  # closing cannot save either
            await runtime.aclose()
