"""`python -m balkin ...`: the command line."""
import sys

from balkin.cli import main

sys.exit(main())
