from astrid_cli.main import main

raise SystemExit(main())
