"""``python -m astrid_workspace ... -- CMD``: the in-sandbox launcher (see `_launcher`)."""

import sys

from astrid_workspace._launcher import main

sys.exit(main())
