"""Install / trust / update / rollback: the seed-004 flow, enforced."""

from __future__ import annotations

import io
import shutil
import tarfile
from pathlib import Path

import pytest

from astrid_capsule.errors import CapsuleLoadRefused
from astrid_capsule.install import (
    TRUST_REQUIRED_MESSAGE,
    CapsuleInstaller,
    TrustAck,
    TrustRequired,
    compile_capsule,
)
from astrid_capsule.manifest import ManifestError
from astrid_core import JsonObject, VerificationError
from astrid_core.storage import MemoryStorage
from astrid_crypto import KeyPair

pytestmark = pytest.mark.anyio

MANIFEST = """[package]
name = "notes"
version = "{version}"

[component]
entrypoint = "notes_tool.wasm"

[capabilities]
fs_read = [{reads}]
kv = true

[[tool]]
name = "read_note"
description = "Read a note"
export = "read_note"
"""


def make_capsule(root: Path, wasm: Path, version: str = "0.1.0", reads: str = '"notes/**"') -> Path:
    root.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(wasm, root / "notes_tool.wasm")
    (root / "Capsule.toml").write_text(MANIFEST.format(version=version, reads=reads))
    return root


@pytest.fixture
def events() -> list[tuple[str, JsonObject]]:
    return []


@pytest.fixture
def installer(tmp_path: Path, events: list[tuple[str, JsonObject]]) -> CapsuleInstaller:
    async def record(kind: str, data: JsonObject) -> None:
        events.append((kind, data))

    return CapsuleInstaller(tmp_path / "home", MemoryStorage(), on_event=record)


async def compiled(tmp_path: Path, wasm: Path, **kw: str) -> Path:
    source = make_capsule(tmp_path / f"src-{kw.get('version', '0.1.0')}", wasm, **kw)
    archive = tmp_path / f"notes-{kw.get('version', '0.1.0')}.capsule"
    compile_capsule(source, archive)
    return archive


async def test_dry_run_writes_nothing(
    tmp_path: Path, wasm_modules: dict[str, Path], installer: CapsuleInstaller
) -> None:
    archive = await compiled(tmp_path, wasm_modules["notes_tool"])
    plan = await installer.plan(archive)
    text = plan.disclosure()
    assert "UNSIGNED" in text
    assert "read files (workspace): notes/**" in text
    installer.discard(plan)
    assert await installer.list() == []
    assert [p.name for p in installer.root.iterdir()] == []


async def test_install_without_trust_fails_with_exact_message(
    tmp_path: Path, wasm_modules: dict[str, Path], installer: CapsuleInstaller
) -> None:
    plan = await installer.plan(await compiled(tmp_path, wasm_modules["notes_tool"]))
    with pytest.raises(TrustRequired) as info:
        await installer.commit(plan, trust=None)
    assert info.value.message == TRUST_REQUIRED_MESSAGE
    assert await installer.list() == []


async def test_install_records_trust_and_audits(
    tmp_path: Path,
    wasm_modules: dict[str, Path],
    installer: CapsuleInstaller,
    events: list[tuple[str, JsonObject]],
) -> None:
    plan = await installer.plan(await compiled(tmp_path, wasm_modules["notes_tool"]))
    record = await installer.commit(plan, TrustAck(method="flag", actor="test"))
    assert record.revision == 1
    assert record.trust_method == "flag"
    assert record.permissions_accepted["fs_read"] == ["notes/**"]
    assert events[0][0] == "capsule_install"
    assert events[0][1]["content_hash"] == record.content_hash
    await installer.verify_installed("notes")


async def test_source_swapped_after_check_is_not_what_gets_installed(
    tmp_path: Path, wasm_modules: dict[str, Path], installer: CapsuleInstaller
) -> None:
    source = make_capsule(tmp_path / "src", wasm_modules["notes_tool"])
    compile_capsule(source, tmp_path / "a.capsule")  # records the hash in a copy
    plan = await installer.plan(tmp_path / "a.capsule")
    (source / "notes_tool.wasm").write_bytes(wasm_modules["hostile"].read_bytes())  # swap
    record = await installer.commit(plan, TrustAck(method="flag"))
    installed = installer.path_of(record) / "notes_tool.wasm"
    assert installed.read_bytes() == wasm_modules["notes_tool"].read_bytes()


async def test_swap_after_install_is_detected(
    tmp_path: Path, wasm_modules: dict[str, Path], installer: CapsuleInstaller
) -> None:
    plan = await installer.plan(await compiled(tmp_path, wasm_modules["notes_tool"]))
    record = await installer.commit(plan, TrustAck(method="flag"))
    (installer.path_of(record) / "notes_tool.wasm").write_bytes(
        wasm_modules["hostile"].read_bytes()
    )
    with pytest.raises(VerificationError, match="hash mismatch"):
        await installer.verify_installed("notes")


async def test_widened_update_requires_trust_again(
    tmp_path: Path, wasm_modules: dict[str, Path], installer: CapsuleInstaller
) -> None:
    installer.renew_trust = "on_widening"  # this test is about what widens
    wasm = wasm_modules["notes_tool"]
    first = await installer.plan(await compiled(tmp_path, wasm))
    await installer.commit(first, TrustAck(method="flag"))
    same = await installer.plan(await compiled(tmp_path, wasm, version="0.1.1"))
    assert same.widened == []
    assert (await installer.commit(same, trust=None)).revision == 2  # no new permissions
    wider = await installer.plan(
        await compiled(tmp_path, wasm, version="0.2.0", reads='"notes/**", "src/**"')
    )
    assert wider.widened == ["fs_read: src/**"]
    assert "NEW permissions" in wider.disclosure()
    with pytest.raises(TrustRequired):
        await installer.commit(wider, trust=None)
    assert (await installer.require("notes")).version == "0.1.1"


async def test_rollback_and_remove(
    tmp_path: Path,
    wasm_modules: dict[str, Path],
    installer: CapsuleInstaller,
    events: list[tuple[str, JsonObject]],
) -> None:
    wasm = wasm_modules["notes_tool"]
    await installer.commit(
        await installer.plan(await compiled(tmp_path, wasm)), TrustAck(method="flag")
    )
    await installer.commit(
        await installer.plan(await compiled(tmp_path, wasm, version="0.2.0")),
        TrustAck(method="flag"),
    )
    rolled = await installer.rollback("notes")
    assert rolled.version == "0.1.0"
    assert rolled.revision == 1
    await installer.verify_installed("notes")
    await installer.remove("notes")
    assert await installer.get("notes") is None
    assert [kind for kind, _ in events] == [
        "capsule_install",
        "capsule_update",
        "capsule_rollback",
        "capsule_remove",
    ]


async def test_signed_capsule_trusted_untrusted_and_tampered(
    tmp_path: Path, wasm_modules: dict[str, Path]
) -> None:
    publisher = KeyPair.generate()
    source = make_capsule(tmp_path / "src", wasm_modules["notes_tool"])
    archive = tmp_path / "signed.capsule"
    compile_capsule(source, archive, sign_with=publisher)

    trusting = CapsuleInstaller(
        tmp_path / "h1", MemoryStorage(), trusted_publishers=[publisher.public_key]
    )
    plan = await trusting.plan(archive)
    assert plan.publisher.trusted
    assert f"signed by:    {publisher.key_id} (trusted publisher)" in plan.disclosure()
    trusting.discard(plan)

    stranger = CapsuleInstaller(tmp_path / "h2", MemoryStorage())
    plan = await stranger.plan(archive)
    assert plan.publisher.signed
    assert not plan.publisher.trusted
    stranger.discard(plan)

    # Tamper: repack with a changed manifest but the old signature.
    tampered = tmp_path / "tampered.capsule"
    with tarfile.open(archive) as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            if member.name == "Capsule.toml":
                data = data.replace(b'fs_read = ["notes/**"]', b'fs_read = ["**"]')
                member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    with pytest.raises(VerificationError, match="does not describe this capsule"):
        await stranger.plan(tampered)
    assert [p for p in stranger.root.iterdir() if p.name.startswith(".staging")] == []


async def test_archive_with_path_traversal_is_refused(
    tmp_path: Path, installer: CapsuleInstaller
) -> None:
    evil = tmp_path / "evil.capsule"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../../escaped.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"bad"))
    with pytest.raises(Exception, match="not a valid capsule archive"):
        await installer.plan(evil)
    assert not (tmp_path / "escaped.txt").exists()


async def test_symlink_in_capsule_is_refused(
    tmp_path: Path, wasm_modules: dict[str, Path], installer: CapsuleInstaller
) -> None:
    source = make_capsule(tmp_path / "src", wasm_modules["notes_tool"])
    (source / "passwd").symlink_to("/etc/passwd")
    with pytest.raises(ManifestError, match="symlinks are not allowed"):
        await installer.plan(source)


async def test_a_component_without_hash_is_hashed_at_install_and_trust_binds_to_it(
    tmp_path: Path, wasm_modules: dict[str, Path], installer: CapsuleInstaller
) -> None:
    from astrid_capsule.verified import verify_installed
    from astrid_crypto import hash_file

    installer.renew_trust = "on_widening"  # even so, other code under the same manifest asks
    wasm = wasm_modules["notes_tool"]
    source = make_capsule(tmp_path / "src", wasm)  # as seed 001 writes it: no hash
    plan = await installer.plan(source)
    digest = hash_file(wasm).hex
    assert plan.component_hash == digest
    assert f"notes_tool.wasm BLAKE3 {digest} (hashed now" in plan.disclosure()
    record = await installer.commit(plan, TrustAck(method="flag"))
    assert record.component_hash == digest
    assert (await verify_installed(installer, "notes")).wasm == wasm.read_bytes()

    # The same manifest with other code: the trust bound to the old hash does not carry over.
    other = make_capsule(tmp_path / "src2", wasm_modules["hostile"], version="0.1.1")
    update = await installer.plan(other)
    assert update.widened == []
    assert update.rebinding == [f"component code: {digest} -> {update.component_hash}"]
    assert update.needs_trust
    assert "CHANGED compared to the installed revision" in update.disclosure()
    with pytest.raises(TrustRequired):
        await installer.commit(update, trust=None)

    # Swapped in place after install: refused at load (tree hash and the recorded hash).
    shutil.copyfile(wasm_modules["hostile"], installer.path_of(record) / "notes_tool.wasm")
    with pytest.raises(CapsuleLoadRefused):
        await verify_installed(installer, "notes")


async def test_every_update_is_trusted_again_by_default_with_a_full_diff(
    tmp_path: Path, wasm_modules: dict[str, Path], installer: CapsuleInstaller
) -> None:
    assert installer.renew_trust == "always"  # seed 004
    wasm = wasm_modules["notes_tool"]
    await installer.commit(
        await installer.plan(await compiled(tmp_path, wasm, reads='"notes/**", "old/**"')),
        TrustAck(method="flag"),
    )
    update = await installer.plan(
        await compiled(tmp_path, wasm, version="0.2.0", reads='"notes/**", "src/**"')
    )
    assert update.widened == ["fs_read: src/**"]
    assert update.removed == ["fs_read: old/**"]
    assert update.changed[0] == "version: 0.1.0 -> 0.2.0"
    text = update.disclosure()
    assert "    + fs_read: src/**" in text
    assert "    - fs_read: old/**" in text
    assert "    ~ version: 0.1.0 -> 0.2.0" in text
    assert "renew_trust = always" in text
    # Narrowing only: still asked (the seed renews trust on every update).
    narrower = await installer.plan(await compiled(tmp_path, wasm, version="0.3.0"))
    assert narrower.widened == []
    assert narrower.removed == ["fs_read: old/**"]
    assert narrower.needs_trust
    with pytest.raises(TrustRequired):
        await installer.commit(narrower, trust=None)
