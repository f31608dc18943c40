import sys

from palsy_core.cli import main

sys.exit(main())
