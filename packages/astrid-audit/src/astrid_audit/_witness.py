"""Witnesses: copies of the log's signed tree heads kept where an attacker of the store is not.

A checkpoint stored next to the entries it covers proves nothing about truncation: whoever can
cut the tail can delete the checkpoints past the cut and fix the size record. Certificate
Transparency and Sigsum solve this with witnesses — parties outside the log that remember every
signed tree head they saw, so a log that is later shorter (or has a different history) than a
head they remember is caught. Astrid has three:

- ``FileWitness``: an append-only file outside the state directory (default
  ``$ASTRID_HOME/witness/checkpoints``; point it at another device), one signed checkpoint per
  line, fsynced before the checkpoint counts;
- ``CommandWitness``: a command that receives each checkpoint on stdin (ship it to a git
  repository, a remote host, a transparency service) — the only one an attacker who owns the
  machine cannot rewrite afterwards;
- ``TreeHeadCache``: what one *client* (the CLI, a bot) last verified, kept in its own file.

A verifier checks the log against every head any of them holds (``verify_entries``
``witnessed=``): a log shorter than a head fails naming the missing range.
"""

from __future__ import annotations

import json
import os
import re
import stat
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import anyio

from astrid_core import StorageError, VerificationError
from astrid_crypto import PublicKey, write_private_file

from ._entry import Checkpoint
from ._merkle import MerkleTree, verify_consistency

__all__ = [
    "Witness",
    "WitnessedHead",
    "FileWitness",
    "CommandWitness",
    "Witnesses",
    "TreeHeadCache",
    "parse_checkpoint",
    "check_head",
    "when",
]

# A witness line is one checkpoint's JSON; anything longer is not one of ours.
_MAX_LINE = 4096
_TAIL = 4 * _MAX_LINE  # what start-up reads of a witness file: its last few lines
_COMMAND_TIMEOUT_S = 30.0
# A witness command gets the daemon's environment minus anything that looks like a secret (it
# needs PATH, HOME, SSH_AUTH_SOCK to push somewhere; never the model's API key).
_SECRET_NAME = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD|CREDENTIAL|AUTH(?!_SOCK)", re.I)


def when(timestamp_ms: int) -> str:
    """A checkpoint's time as UTC ISO 8601 (what error messages show)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp_ms / 1000))


@dataclass(frozen=True)
class WitnessedHead:
    """A signed tree head and who vouches for having seen it (shown in failures)."""

    checkpoint: Checkpoint
    source: str


def parse_checkpoint(text: str, where: str) -> Checkpoint:
    """One checkpoint from its JSON text; VerificationError naming ``where`` otherwise."""
    try:
        return Checkpoint.model_validate_json(text)
    except ValueError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise VerificationError(
            f"{where}: not a signed checkpoint ({first})",
            hint="a witness or kept tree head was damaged or edited; restore it from a copy",
        ) from None


def check_head(
    head: WitnessedHead, tree: MerkleTree, size: int, keys: dict[str, PublicKey]
) -> None:
    """The log (``tree`` of ``size`` entries) extends the signed tree head ``head``: it is
    signed by a trusted key, no larger than the log, and the log's first ``tree_size`` entries
    have its root (shown with an RFC 6962 consistency proof, as a remote witness would)."""
    cp, source = head.checkpoint, head.source
    try:
        cp.check(keys)
    except VerificationError as exc:
        raise VerificationError(
            f"{source}: {exc.message}",
            hint="a tree head was forged or damaged; if the key was replaced on purpose, "
            "move the old witness aside (mv witness/checkpoints witness/checkpoints.old)",
        ) from exc
    seen = f"{source} saw a tree of {cp.tree_size} entries at {when(cp.timestamp_ms)}"
    if cp.tree_size > size:
        missing = f"entries {size}..{cp.tree_size - 1} are missing"
        if size == 0:
            raise VerificationError(
                f"the log is empty after {cp.tree_size} entries were witnessed: {missing}; {seen}",
                hint=_TRUNCATED_HINT,
            )
        raise VerificationError(f"{missing} (the tail was truncated): {seen}", hint=_TRUNCATED_HINT)
    if cp.tree_size == 0:
        return
    try:
        if tree.root(cp.tree_size).hex() != cp.root:
            raise VerificationError("roots differ")
        verify_consistency(
            cp.tree_size,
            size,
            bytes.fromhex(cp.root),
            tree.root(),
            tree.consistency_proof(cp.tree_size),
        )
    except (VerificationError, ValueError):
        raise VerificationError(
            f"the log's first {cp.tree_size} entries do not have the Merkle root that {seen}",
            hint="entries were removed, rewritten or reordered; restore the log from a backup",
        ) from None


_TRUNCATED_HINT = (
    "entries were deleted from the store after they were witnessed; restore "
    "$ASTRID_HOME/state from a backup (a daemon refuses to start on it until then)"
)


class Witness(Protocol):
    """Somewhere each new checkpoint is sent before it counts."""

    description: str

    async def append(self, checkpoint: Checkpoint) -> None:
        """Record ``checkpoint`` durably; raise StorageError if that is not possible."""
        ...

    def heads(self) -> list[WitnessedHead]:
        """Every head this witness can show a verifier (none, for one that only ships)."""
        ...

    def newest(self) -> WitnessedHead | None:
        """The largest head it holds, read in time independent of how many it holds."""
        ...


def _open_nofollow(path: Path, flags: int) -> int:
    """Open a regular file only: not through a symlink (O_NOFOLLOW), and never a FIFO or a
    device planted in its place (O_NONBLOCK so opening one cannot hang, then refused)."""
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise OSError(f"{path} is not a regular file")
    os.set_blocking(fd, True)
    return fd


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class FileWitness:
    """An append-only file of signed checkpoints, one JSON object per line.

    Opened with O_APPEND (a line can only be added at the end) and O_NOFOLLOW (a planted
    symlink cannot redirect it), created 0600, fsynced after every line (and its directory
    when the file is created), so a checkpoint counts only once it is durable.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.description = f"witness file {self.path}"

    async def append(self, checkpoint: Checkpoint) -> None:
        line = checkpoint.model_dump_json() + "\n"
        await anyio.to_thread.run_sync(self._append, line.encode())

    def _append(self, data: bytes) -> None:
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            created = not self.path.exists()
            fd = _open_nofollow(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
            try:
                written = os.write(fd, data)
                if written != len(data):
                    raise OSError(f"short write ({written} of {len(data)} bytes)")
                os.fsync(fd)
            finally:
                os.close(fd)
            if created:
                _fsync_directory(self.path.parent)
        except OSError as exc:
            raise StorageError(
                f"cannot write the audit witness {self.path}: {exc}",
                hint="the action was NOT performed (fail closed): make the witness writable "
                "(a regular file you own, not a symlink, on a disk with space) or point "
                "[audit] witness at another path",
            ) from exc

    def heads(self) -> list[WitnessedHead]:
        """Every checkpoint in the file, in order. A damaged line fails; a last line cut short
        (a crash while appending) is skipped: its checkpoint never counted."""
        return self._parse(self._read(), first_line=1)

    def newest(self) -> WitnessedHead | None:
        """The largest head in the file's tail. ``AuditLog`` appends heads in growing size, so
        it is normally the last line; taking the largest means an older checkpoint appended
        after it (copies sit in the store) cannot lower the bar the store is checked against.
        Reads the tail only, so start-up does not grow with the number of checkpoints."""
        data, skipped = self._read_tail()
        heads = self._parse(data, first_line=1 if not skipped else 0)
        return max(heads, key=lambda h: h.checkpoint.tree_size) if heads else None

    def _parse(self, data: bytes, *, first_line: int) -> list[WitnessedHead]:
        """``first_line`` 0: ``data`` starts mid-file (its first line may be partial: skipped,
        and lines are numbered from the end)."""
        heads: list[WitnessedHead] = []
        lines = data.split(b"\n")
        if first_line == 0:
            lines = lines[1:]
        for number, raw in enumerate(lines, 1):
            if not raw.strip():
                continue
            if number == len(lines):
                break  # no newline after it: a torn append, never acknowledged
            where = (
                f"{self.description}, line {number}"
                if first_line
                else f"{self.description}, line {len(lines) - number} from the end"
            )
            if len(raw) > _MAX_LINE:
                raise VerificationError(
                    f"{where}: line too long to be a checkpoint",
                    hint="the witness was damaged or edited; restore it from a copy",
                )
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise VerificationError(
                    f"{where}: not UTF-8 text",
                    hint="the witness was damaged or edited; restore it from a copy",
                ) from None
            heads.append(WitnessedHead(parse_checkpoint(text, where), self.description))
        return heads

    def _read(self) -> bytes:
        return self._read_tail(everything=True)[0]

    def _read_tail(self, *, everything: bool = False) -> tuple[bytes, bool]:
        """The file's last ``_TAIL`` bytes (all of it if ``everything``) and whether the
        start was skipped."""
        try:
            fd = _open_nofollow(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return b"", False
        except OSError as exc:
            raise VerificationError(
                f"cannot read the audit witness {self.path}: {exc}",
                hint="the witness must be a regular file (not a symlink) readable by you",
            ) from exc
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            if everything or size <= _TAIL:
                return handle.read(), False
            handle.seek(size - _TAIL)
            return handle.read(), True


class CommandWitness:
    """A command that receives each checkpoint (one JSON line) on stdin; exit 0 = recorded.

    It runs without a shell, with the environment minus secret-looking variables (API keys,
    tokens, passwords); a non-zero exit, a timeout or a missing program fails the checkpoint
    (and so the appends waiting on it)."""

    def __init__(self, argv: Sequence[str], *, timeout_s: float = _COMMAND_TIMEOUT_S) -> None:
        if not argv:
            raise ValueError("a witness command needs a program")
        self.argv = list(argv)
        self.timeout_s = timeout_s
        self.description = f"witness command {self.argv[0]}"

    async def append(self, checkpoint: Checkpoint) -> None:
        data = (checkpoint.model_dump_json() + "\n").encode()
        try:
            with anyio.fail_after(self.timeout_s):
                result = await anyio.run_process(
                    self.argv, input=data, check=False, env=_scrubbed_environment()
                )
        except TimeoutError as exc:
            raise StorageError(
                f"{self.description} did not finish within {self.timeout_s:.0f} s",
                hint="the action was NOT performed (fail closed); fix [audit] witness_command",
            ) from exc
        except OSError as exc:
            raise StorageError(
                f"cannot run {self.description}: {exc}",
                hint="the action was NOT performed (fail closed); fix [audit] witness_command",
            ) from exc
        if result.returncode != 0:
            detail = result.stderr.decode(errors="replace").strip()[-300:]
            raise StorageError(
                f"{self.description} failed (exit {result.returncode}): {detail}",
                hint="the action was NOT performed (fail closed); fix [audit] witness_command",
            )

    def heads(self) -> list[WitnessedHead]:
        return []

    def newest(self) -> WitnessedHead | None:
        return None


def _scrubbed_environment() -> dict[str, str]:
    return {name: value for name, value in os.environ.items() if not _SECRET_NAME.search(name)}


class Witnesses:
    """Several witnesses as one: a checkpoint counts once every one of them recorded it."""

    def __init__(self, witnesses: Sequence[Witness]) -> None:
        self.witnesses = list(witnesses)
        self.description = ", ".join(w.description for w in self.witnesses)

    async def append(self, checkpoint: Checkpoint) -> None:
        for witness in self.witnesses:
            await witness.append(checkpoint)

    def heads(self) -> list[WitnessedHead]:
        return [head for witness in self.witnesses for head in witness.heads()]

    def newest(self) -> WitnessedHead | None:
        found = [h for h in (w.newest() for w in self.witnesses) if h is not None]
        return max(found, key=lambda h: h.checkpoint.tree_size, default=None)


class TreeHeadCache:
    """The last tree head one client verified, in a file of its own (replaced atomically).

    A client that remembers a head catches a log rolled back below it even when the store and
    the daemon's witness were both rewritten."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.description = f"tree head kept by the client in {self.path}"

    def load(self) -> WitnessedHead | None:
        try:
            fd = _open_nofollow(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise VerificationError(
                f"cannot read {self.description}: {exc}",
                hint="it must be a regular file (not a symlink) readable by you",
            ) from exc
        with os.fdopen(fd, "rb") as handle:
            raw = handle.read(_MAX_LINE + 1)
        try:
            document = json.loads(raw)
            text = json.dumps(document["checkpoint"])
        except (ValueError, KeyError, TypeError, RecursionError):
            raise VerificationError(
                f"{self.description} is damaged",
                hint=f"restore it from a copy, or remove {self.path} to trust the log afresh",
            ) from None
        return WitnessedHead(parse_checkpoint(text, self.description), self.description)

    def save(self, checkpoint: Checkpoint) -> None:
        """Keep ``checkpoint`` (only ever a larger one than the kept head: never roll back)."""
        kept = self.load()
        if kept is not None and kept.checkpoint.tree_size > checkpoint.tree_size:
            return
        data = json.dumps({"checkpoint": checkpoint.model_dump(mode="json")}).encode()
        write_private_file(self.path, data + b"\n", replace=True)  # 0600, fsynced, atomic
