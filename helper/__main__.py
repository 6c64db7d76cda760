"""Run the helper as ``python -m helper``."""

import sys

from helper.entry import main

sys.exit(main())
