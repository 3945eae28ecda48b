"""``astrid capsule``: install, trust, update, roll back, remove, and compile capsules.

Installing goes through the daemon (the only process that opens storage), in two steps over
one connection: the daemon stages the source and returns what the *staged copy* asks for,
the person reads that and acknowledges trust, and the daemon installs exactly the staged
copy. The connection stays open while the person reads (its event loop runs in a background
thread), so neither the plan nor an auto-started daemon expires in the meantime.

``compile`` and ``keygen`` work on local files and need no daemon.
"""

from __future__ import annotations

import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .._support import emit_json, fail, home_of

if TYPE_CHECKING:
    from rich.console import Console

Call = Callable[..., Any]


@click.group()
def capsule() -> None:
    """Install, trust, update, roll back and remove capsules.

    Installing shows what the capsule asks for (computed from the staged copy that gets
    installed) and needs your explicit trust: type `trust <name>` when asked, or pass --trust.
    --yes never grants trust. Publisher keys you trust live in
    $ASTRID_HOME/keys/publishers/*.pub (one base64 public key per file).

    \b
    Examples:
      astrid capsule install ./notes --dry-run
      astrid capsule install notes-0.1.0.capsule
      astrid capsule install notes-0.1.0.capsule --trust
      astrid capsule list
      astrid capsule info notes
      astrid capsule rollback notes
      astrid capsule remove notes --yes
      astrid capsule keygen publisher.key
      astrid capsule compile ./notes -o notes-0.1.0.capsule --sign publisher.key
    """


# ---------------------------------------------------------------------- daemon connection


@contextmanager
def _daemon(ctx: click.Context) -> Iterator[Call]:
    """A connection whose event loop runs in a thread, so this thread may block on prompts."""
    from functools import partial

    from anyio.from_thread import start_blocking_portal

    from astrid_gateway.client import GatewayClient

    with start_blocking_portal() as portal:
        client = portal.call(
            partial(GatewayClient.open, home_of(ctx), autostart=True, client_name="cli")
        )

        def call(method: str, timeout: float = 60.0, **params: Any) -> Any:
            return portal.call(partial(client.call, method, timeout, **params))

        failure: BaseException | None = None
        with portal.wrap_async_context_manager(client):
            try:
                yield call
            except BaseException as exc:
                # Raised here, it would reach the client's task group and come back wrapped
                # in an ExceptionGroup; close the connection cleanly, then raise it as it is.
                failure = exc
        if failure is not None:
            raise failure


@contextmanager
def _errors_as_messages() -> Iterator[None]:
    from astrid_core import AstridError

    try:
        yield
    except AstridError as exc:
        fail(exc.message, exc.hint)


def _one_call(ctx: click.Context, method: str, **params: Any) -> Any:
    with _errors_as_messages(), _daemon(ctx) as call:
        return call(method, **params)


# ---------------------------------------------------------------------- rendering

_BIG_LETTERS = {
    "U": ["█   █", "█   █", "█   █", "█   █", " ███ "],
    "N": ["█   █", "██  █", "█ █ █", "█  ██", "█   █"],
    "S": [" ████", "█    ", " ███ ", "    █", "████ "],
    "I": ["███", " █ ", " █ ", " █ ", "███"],
    "G": [" ████", "█    ", "█  ██", "█   █", " ███ "],
    "E": ["█████", "█    ", "████ ", "█    ", "█████"],
    "D": ["████ ", "█   █", "█   █", "█   █", "████ "],
}


def _big(word: str) -> str:
    return "\n".join(" ".join(_BIG_LETTERS[c][row] for c in word) for row in range(5))


def _clean(value: object) -> str:
    """Capsule-provided text made inert: no rich markup, no control or bidi characters.

    A description must not be able to draw its own "signed by a trusted publisher" line,
    clear the screen or reorder what the person reads.
    """
    from rich.markup import escape

    text = "".join(
        ch if not unicodedata.category(ch).startswith("C") else f"\\u{ord(ch):04x}"
        for ch in str(value)
    )
    return escape(text)


def _console(to_stderr: bool) -> Console:
    from rich.console import Console

    return Console(stderr=to_stderr, highlight=False, soft_wrap=True)


def _render_publisher(console: Console, d: dict[str, Any]) -> None:
    from rich.panel import Panel
    from rich.text import Text

    publisher = d["publisher"]
    if not publisher["signed"]:
        banner = Text(_big("UNSIGNED"), style="bold red", justify="center")
        banner.append(
            "\n\nUNSIGNED: no publisher vouches for this capsule.\n"
            "Install it only if you trust where you got it from.",
            style="bold",
        )
        console.print(Panel(banner, border_style="bold red", expand=False))
    elif publisher["trusted"]:
        console.print(f"[bold green]signed by trusted publisher {_clean(publisher['key_id'])}[/]")
    else:
        console.print(
            f"[bold yellow]signed by {_clean(publisher['key_id'])}, which is NOT one of your "
            f"trusted publishers[/] (trusted keys: {_clean(d['trusted_publishers_dir'])}/*.pub)"
        )


def _render_asks(console: Console, d: dict[str, Any]) -> None:
    caps = d["capabilities"]
    lines: list[str] = []
    for label, key in (
        ("network hosts", "net"),
        ("read files (workspace)", "fs_read"),
        ("write files (workspace)", "fs_write"),
        ("config keys", "config"),
    ):
        values = [v for v in caps.get(key, []) if not (key.startswith("fs_") and v.startswith("/"))]
        if values:
            lines.append(f"{label}: {', '.join(_clean(v) for v in values)}")
    for entry in d.get("outside_workspace", []):
        kind, path = str(entry).split(": ", 1)
        verb = "READ" if kind == "fs_read" else "WRITE"
        lines.append(
            f"[bold red]*** {verb} OUTSIDE THE WORKSPACE: {_clean(path)} ***[/] (your denied "
            "paths, e.g. ~/.ssh, still apply)"
        )
    if caps.get("kv"):
        lines.append("its own key-value storage")
    for secret in d["secrets"]:
        about = secret["description"] or secret["request"]
        state = "stored" if secret["stored"] else "you will be asked for it"
        lines.append(
            f"secret [bold]{_clean(secret['name'])}[/]"
            + (f" ({_clean(about)})" if about else "")
            + f": {state}"
        )
    for setting in d["settings"]:
        lines.append(f"setting {_clean(setting['name'])}")
    for server in d["mcp_servers"]:
        lines.append(
            f"runs an MCP server (untrusted, sandboxed) {_clean(server['id'])}: "
            f"{_clean(server['command'])}"
        )
    for event in d["interceptors"]:
        lines.append(f"sees every {_clean(event)} event")
    for cron in d["cron"]:
        lines.append(
            f"scheduled task {_clean(cron['name'])} ({_clean(cron['schedule'])}): "
            f"{_clean(cron['action'])}"
        )
    for provider in d["llm_providers"]:
        lines.append(f"provides the model {_clean(provider)}")
    component = d.get("component")
    if component and component.get("wasi"):
        lines.append("WASI access for its WASM component")
    console.print("[bold]It asks for:[/]")
    for line in lines or ["nothing beyond its own tools"]:
        console.print(f"  - {line}")
    for label, key in (("tools", "tools"), ("skills", "skills")):
        if d[key]:
            console.print(f"[bold]{label}:[/] " + ", ".join(_clean(t["name"]) for t in d[key]))


def _render_update(console: Console, d: dict[str, Any]) -> None:
    previous = d["previous"]
    if previous is None:
        return
    console.print(
        f"[bold]Updates[/] {_clean(previous['version'])} (revision {previous['revision']}) "
        f"to {_clean(d['version'])}"
    )
    if d["widened"]:
        console.print("[bold red]NEW permissions compared to the installed revision:[/]")
        for item in d["widened"]:
            console.print(f"  [bold red]+ {_clean(item)}[/]")
    else:
        console.print("[green]no new permissions[/]")
    if d.get("removed"):
        console.print("[bold]REMOVED compared to the installed revision:[/]")
        for item in d["removed"]:
            console.print(f"  - {_clean(item)}")
    if d.get("changed"):
        console.print("[bold]CHANGED compared to the installed revision:[/]")
        for item in d["changed"]:
            console.print(f"  ~ {_clean(item)}")
    if d.get("renew_trust") == "always":
        console.print("every update is trusted again (\\[capsules] renew_trust = always)")


def _render_disclosure(console: Console, d: dict[str, Any]) -> None:
    from rich.rule import Rule

    console.print(Rule(f"Capsule {_clean(d['name'])} {_clean(d['version'])}"))
    if d["description"]:
        console.print(_clean(d["description"]))
    console.print(f"content hash: {_clean(d['content_hash'])}")
    component = d.get("component")
    if component:
        how = "" if component.get("hash") else " (hashed now: the manifest gives no hash)"
        console.print(
            f"component: {_clean(component['entrypoint'])} BLAKE3 "
            f"{_clean(str(d.get('component_hash')))}{how}"
        )
    source = d.get("source")
    if source:
        console.print(
            f"from git: {_clean(source['git'])} at {_clean(source['ref'])!r} = commit "
            f"{_clean(source['commit'])} (pinned: a moved ref needs trust again)"
        )
    _render_publisher(console, d)
    _render_asks(console, d)
    _render_update(console, d)
    console.print(
        "[dim]Enforced: the capsule gets only these permissions; each use is checked and "
        "audited.[/]"
    )


# ---------------------------------------------------------------------- install


def _plan_source(source: str, ref: str | None) -> str:
    """What the daemon plans from: a git URL as ``URL#REF``, else the resolved path."""
    from astrid_capsule.git import parse_git_source

    if parse_git_source(source) is not None:
        return f"{source.partition('#')[0]}#{ref}" if ref else source
    if ref is not None:
        raise click.UsageError("--ref applies to a git URL only")
    path = Path(source)
    if not path.exists():
        raise click.BadParameter(f"{source} does not exist", param_hint="SOURCE")
    return str(path.resolve())


def _acknowledge(d: dict[str, Any], trust: bool, yes: bool, err: bool) -> str | None:
    """The trust method to send, or None (the daemon then refuses unless none is needed)."""
    name = d["name"]
    if trust:
        return "flag"
    if not d["needs_trust"]:
        if not yes:
            click.confirm(
                f"Update {name} to {d['version']} (no new permissions)?", abort=True, err=err
            )
        return None
    if yes:
        return None  # --yes never grants trust: the daemon refuses and says to pass --trust
    verb = "update" if d["previous"] else "install"
    answer = click.prompt(f'Type "trust {name}" to {verb}', default="", show_default=False, err=err)
    if answer.strip() != f"trust {name}":
        fail(
            f"trust was not acknowledged: {name} was not installed",
            f'type exactly "trust {name}", or pass --trust after reading the disclosure',
        )
    return "interactive"


def _ask_secrets(d: dict[str, Any], err: bool) -> dict[str, str]:
    values: dict[str, str] = {}
    hidden = sys.stdin.isatty()  # piped input is not echoed anyway, and getpass needs a tty
    for secret in d["secrets"]:
        if secret["stored"]:
            continue
        label = f"{secret['request'] or secret['description'] or 'secret'} ({secret['name']})"
        if secret["has_default"]:
            label += " [empty: the capsule's default]"
        value: str = click.prompt(
            label,
            hide_input=hidden,
            default="" if secret["has_default"] else None,
            show_default=False,
            err=err,
        )
        if value:
            values[secret["name"]] = value
    return values


@capsule.command("install")
@click.argument("source")
@click.option(
    "--ref",
    default=None,
    help="For a git URL: the tag, branch or commit to install (pinned to the commit it "
    "resolves to; default HEAD).",
)
@click.option("--dry-run", is_flag=True, help="Show the disclosure, install nothing.")
@click.option("--trust", is_flag=True, help="Acknowledge trust without typing it (scripts).")
@click.option("--yes", is_flag=True, help="Skip ordinary confirmations (never grants trust).")
@click.option("--json", "as_json", is_flag=True, help="Print JSON (prompts go to stderr).")
@click.pass_context
def capsule_install(
    ctx: click.Context,
    source: str,
    ref: str | None,
    dry_run: bool,
    trust: bool,
    yes: bool,
    as_json: bool,
) -> None:
    """Install or update a capsule from a directory, a .capsule archive or a git URL.

    The disclosure (capabilities, secrets, MCP servers, tools, publisher, and for an update
    the new permissions) is computed from a staged copy, and that copy is what gets
    installed: changing the source afterwards changes nothing.
    """
    console = _console(to_stderr=as_json)
    with _errors_as_messages(), _daemon(ctx) as call:
        planned = call("capsulePlan", source=_plan_source(source, ref), timeout=300)
        d: dict[str, Any] = planned["disclosure"]
        done = False
        try:
            _render_disclosure(console, d)
            if dry_run:
                call("capsuleDiscard", plan_id=planned["plan_id"])
                done = True
                console.print("[bold]dry run: nothing was installed[/]")
                if as_json:
                    emit_json({"disclosure": d, "installed": None})
                return
            method = _acknowledge(d, trust, yes, err=as_json)
            secrets = _ask_secrets(d, err=as_json) if method or not d["needs_trust"] else {}
            result = call(
                "capsuleCommit",
                plan_id=planned["plan_id"],
                trust=method,
                secrets=secrets,
                timeout=300,
            )
            done = True  # committed, or refused and dropped by the daemon
        finally:
            if not done:
                with suppress(Exception):
                    call("capsuleDiscard", plan_id=planned["plan_id"])
    record = result["record"]
    if as_json:
        emit_json(
            {"disclosure": d, "installed": record, "secrets_stored": result["secrets_stored"]}
        )
        return
    verb = "updated" if d["previous"] else "installed"
    console.print(
        f"[bold green]{verb} {_clean(record['name'])} {_clean(record['version'])}[/] "
        f"(revision {record['revision']}; trust: {_clean(record['trust_method'])} "
        f"by {_clean(record['trust_actor'])}); recorded in the audit log"
    )
    if result["secrets_stored"]:
        console.print(f"secrets stored encrypted: {', '.join(result['secrets_stored'])}")


# ---------------------------------------------------------------------- lifecycle


def _when(epoch: int) -> str:
    from datetime import datetime

    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M")


@capsule.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def capsule_list(ctx: click.Context, as_json: bool) -> None:
    """Installed capsules: version, revision, publisher and how trust was given."""
    rows: list[dict[str, Any]] = _one_call(ctx, "listCapsules")
    if as_json:
        emit_json(rows)
        return
    if not rows:
        click.echo("no capsules installed (install one with `astrid capsule install DIR`)")
        return
    for row in rows:
        signer = row["publisher_key_id"] if row["signed"] else "UNSIGNED"
        click.echo(
            f"{_clean(row['name']):<24} {_clean(row['version']):<12} rev {row['revision']:<3} "
            f"{signer:<18} trust={row['trust_method']} by {_clean(row['trust_actor'])} "
            f"{_when(row['installed_at'])}"
        )


@capsule.command("info")
@click.argument("name")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def capsule_info(ctx: click.Context, name: str, as_json: bool) -> None:
    """One capsule: its install record, what it asks for, and whether its files still match.

    Exit 1 when the installed files no longer match the recorded content hash.
    """
    info: dict[str, Any] = _one_call(ctx, "capsuleInfo", name=name)
    record = info["record"]
    if as_json:
        emit_json(info)
    else:
        console = _console(to_stderr=False)
        console.print(f"[bold]{_clean(record['name'])} {_clean(record['version'])}[/]")
        console.print(f"revision:        {record['revision']}")
        console.print(f"content hash:    {record['content_hash']}")
        signer = record["publisher_key_id"] if record["signed"] else "[bold red]UNSIGNED[/]"
        console.print(f"publisher:       {signer}")
        console.print(
            f"trusted:         {_when(record['trust_acknowledged_at'])} "
            f"({_clean(record['trust_method'])} by {_clean(record['trust_actor'])})"
        )
        console.print(f"installed:       {_when(record['installed_at'])}")
        console.print(f"previous:        {record['previous_revision'] or '-'}")
        console.print(f"files:           {_clean(info['path'])}")
        if info["manifest"]:
            manifest = {
                **info["manifest"],
                "previous": None,
                "widened": [],
            }
            _render_asks(console, manifest)
        if info["verified"]:
            console.print("[green]files match the recorded content hash[/]")
        else:
            console.print(f"[bold red]VERIFY FAILED: {_clean(info['problem'])}[/]")
    if not info["verified"]:
        sys.exit(1)


@capsule.command("rollback")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def capsule_rollback(ctx: click.Context, name: str, yes: bool, as_json: bool) -> None:
    """Go back to the previous revision (which you trusted when it was installed)."""
    if not yes:
        click.confirm(f"roll {name} back to its previous revision?", abort=True)
    record: dict[str, Any] = _one_call(ctx, "capsuleRollback", name=name)
    if as_json:
        emit_json(record)
        return
    click.echo(
        f"rolled {_clean(record['name'])} back to {_clean(record['version'])} "
        f"(revision {record['revision']}); recorded in the audit log"
    )


@capsule.command("remove")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def capsule_remove(ctx: click.Context, name: str, yes: bool, as_json: bool) -> None:
    """Uninstall a capsule: its files, every revision and its stored secrets."""
    if not yes:
        click.confirm(f"remove capsule {name} and its secrets?", abort=True)
    result: dict[str, Any] = _one_call(ctx, "removeCapsule", name=name)
    if as_json:
        emit_json(result)
        return
    click.echo(f"removed {_clean(result['removed'])} (its audit entries are kept)")


@capsule.command("run-job")
@click.argument("name")
@click.argument("job")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def capsule_run_job(ctx: click.Context, name: str, job: str, as_json: bool) -> None:
    """Run one of a capsule's [[cron]] jobs now, to try it out.

    It runs exactly as its schedule would: in [workspace] root, in the capsule's cron session,
    unattended (whatever needs approval is denied and audited), and its next scheduled time
    does not move. Exit 0 when the run succeeded, 1 otherwise.

    Example: astrid capsule run-job weather-notes nightly-index
    """
    run: dict[str, Any] = _one_call(ctx, "runCapsuleJob", capsule=name, job=job)
    if as_json:
        emit_json(run)
    else:
        label = f"cron job {_clean(run['job'])} of capsule {_clean(run['capsule'])}"
        detail = f": {_clean(str(run['detail']))}" if run.get("detail") else ""
        click.echo(f"{label}: {_clean(run['status'])}{detail}")
    if run["status"] != "ok":
        ctx.exit(1)


# ---------------------------------------------------------------------- local tools


@capsule.command("compile")
@click.argument("source")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Archive to write (default: NAME-VERSION.capsule).",
)
@click.option(
    "--sign",
    "key_file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Publisher key (from `astrid capsule keygen`) to sign the archive with.",
)
@click.option("--check", is_flag=True, help="Validate only; write nothing.")
def capsule_compile(source: str, output: Path | None, key_file: Path | None, check: bool) -> None:
    """Validate a capsule, record its component hash, optionally sign, pack one archive.

    SOURCE is a capsule folder, or an OpenClaw plugin (a folder with openclaw.plugin.json, or
    an npm name such as @ollama/openclaw-web-search), which is compiled into a capsule first.
    Runs locally; no daemon needed.
    """
    import tempfile

    from astrid_capsule.install import compile_capsule
    from astrid_capsule.manifest import load_manifest
    from astrid_crypto import KeyPair
    from astrid_openclaw import is_openclaw_plugin

    if is_openclaw_plugin(Path(source)) or not Path(source).exists():
        _compile_openclaw(source, output, key_file, check)
        return
    with _errors_as_messages():
        manifest = load_manifest(Path(source))
        key = KeyPair.load(key_file) if key_file is not None else None
        if check:
            with tempfile.TemporaryDirectory(prefix="astrid-check-") as tmp:
                digest = compile_capsule(Path(source), Path(tmp) / "check.capsule", sign_with=key)
            click.echo(f"{manifest.name} {manifest.package.version} is valid ({digest.hex})")
            return
        target = output or Path(f"{manifest.name}-{manifest.package.version}.capsule")
        digest = compile_capsule(Path(source), target, sign_with=key)
    click.echo(f"compiled {manifest.name} {manifest.package.version} -> {target}")
    click.echo(f"content hash: {digest.hex}")
    click.echo(f"signed by:    {key.key_id}" if key is not None else "signed by:    UNSIGNED")


def _compile_openclaw(source: str, output: Path | None, key_file: Path | None, check: bool) -> None:
    """An OpenClaw plugin: astrid_openclaw compiles it; it says which tier it chose and why."""
    import tempfile

    from astrid_crypto import KeyPair
    from astrid_openclaw import compile_plugin

    with _errors_as_messages(), tempfile.TemporaryDirectory(prefix="astrid-check-") as tmp:
        key = KeyPair.load(key_file) if key_file is not None else None
        target = Path(tmp) / "check.capsule" if check else output
        result, archive, digest = compile_plugin(source, target, sign_with=key)
    info = result.plugin
    tier = "Tier 1 (WASM)" if result.tier == "wasm" else "Tier 2 (Node MCP server)"
    click.echo(f"OpenClaw plugin {info.id} {info.version}: {tier}, because {result.reason}")
    for tool in result.tools:
        click.echo(f"  tool {tool['name']}")
    click.echo(f"  net hosts: {', '.join(result.hosts) or 'none'}")
    for note in result.notes:
        click.echo(f"  note: {note}")
    if check:
        click.echo(f"{info.capsule_name} {info.capsule_version} compiles ({digest})")
        return
    click.echo(f"compiled {info.capsule_name} {info.capsule_version} -> {archive}")
    click.echo(f"content hash: {digest}")
    click.echo(f"signed by:    {key.key_id}" if key is not None else "signed by:    UNSIGNED")


@capsule.command("keygen")
@click.argument("key_file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--force", is_flag=True, help="Replace an existing key file.")
def capsule_keygen(key_file: Path, force: bool) -> None:
    """Create a publisher signing key (KEY_FILE, mode 0600) and KEY_FILE.pub.

    Users who trust you copy KEY_FILE.pub into $ASTRID_HOME/keys/publishers/.
    """
    from astrid_crypto import KeyPair

    key = KeyPair.generate()
    with _errors_as_messages():
        key.save(key_file, overwrite=force)
    public = key_file.with_name(key_file.name + ".pub")
    public.write_text(key.public_key.b64 + "\n")
    click.echo(f"publisher key {key.key_id} written to {key_file} (keep it secret)")
    click.echo(f"public key in {public}: users trust it by copying that file into")
    click.echo("$ASTRID_HOME/keys/publishers/ (default ~/.astrid/keys/publishers/)")


__all__ = ["capsule"]
