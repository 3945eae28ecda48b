"""One module per top-level command; imported lazily by astrid_cli.main."""

__all__: list[str] = []
