"""One module per top-level command; imported lazily by astrid_cli.main."""
