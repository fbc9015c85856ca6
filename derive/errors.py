"""The error of model definitions, raised by the DSL and its validation (DESIGN.md §1, §6)."""
from __future__ import annotations


class ModelError(ValueError):
    """A model definition is invalid.  The message names the model, the population or kernel pair
    and the offending expression."""
