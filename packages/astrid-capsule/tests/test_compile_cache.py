"""wasmtime's compile cache for capsules: on under a private $ASTRID_HOME, off otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from astrid_capsule.wasm._engine import compile_cache_config


def test_the_cache_lives_in_a_private_folder_of_an_existing_home(tmp_path: Path) -> None:
    config = compile_cache_config(str(tmp_path))
    cache = tmp_path / "cache" / "wasmtime"
    assert config == str(tmp_path / "cache" / "wasmtime.toml")
    assert f'directory = "{cache}"' in Path(config).read_text()
    assert os.stat(cache).st_mode & 0o777 == 0o700
    assert os.stat(config).st_mode & 0o777 == 0o600


def test_no_home_no_cache_and_no_folder_made(tmp_path: Path) -> None:
    assert compile_cache_config(str(tmp_path / "nowhere")) == ""
    assert not (tmp_path / "nowhere").exists()


def test_a_cache_folder_others_can_write_or_a_symlink_turns_the_cache_off(tmp_path: Path) -> None:
    cache = tmp_path / "cache" / "wasmtime"
    cache.mkdir(parents=True)
    os.chmod(cache, 0o777)  # noqa: S103 - the attack: a folder others can write
    assert compile_cache_config(str(tmp_path)) == ""
    other = tmp_path / "elsewhere"
    other.mkdir(mode=0o700)
    cache.rmdir()
    cache.symlink_to(other)
    assert compile_cache_config(str(tmp_path)) == ""


def test_a_planted_config_symlink_is_replaced_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "victim.toml"
    target.write_text("keep me\n")
    (tmp_path / "cache").mkdir(mode=0o700)
    (tmp_path / "cache" / "wasmtime.toml").symlink_to(target)
    config = compile_cache_config(str(tmp_path))
    assert not Path(config).is_symlink()
    assert target.read_text() == "keep me\n"


def test_a_compiled_module_lands_in_the_cache(
    tmp_path: Path, wasm_modules: dict[str, Path]
) -> None:
    """A fresh process with $ASTRID_HOME set builds a plugin; its compiled code is cached."""
    module = next(iter(wasm_modules.values()))
    script = (
        "import sys, extism\n"
        "from astrid_capsule.wasm import _engine\n"
        "data = open(sys.argv[1], 'rb').read()\n"
        "extism.Plugin(data, wasi=True, functions=_engine._HOST_FUNCTIONS)\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "EXTISM_CACHE_CONFIG"}
    env["ASTRID_HOME"] = str(tmp_path)
    subprocess.run([sys.executable, "-c", script, str(module)], env=env, check=True, timeout=120)
    cached = [p for p in (tmp_path / "cache" / "wasmtime").rglob("*") if p.is_file()]
    assert cached, "nothing was written to the compile cache"
