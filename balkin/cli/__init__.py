"""The `balkin` command line (entry point balkin.cli:main; also `python -m balkin`)."""
from .app import build_parser, main

__all__ = ["build_parser", "main"]
