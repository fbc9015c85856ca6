"""`balkin solve MODEL --field --T T [--dt DT] [--closure] [--json F] [--npz F]`: the neural field
(solvers.field), registered as a solve mode."""
from __future__ import annotations

from .cli_solve import register_mode
from .field import add_field_arguments, solve_field_command

register_mode("field", solve_field_command,
              "neural field of means and covariances (exact for linear/additive models; --closure: "
              "a labelled Gaussian-closure approximation otherwise)", add_field_arguments)
