"""balkin.solvers: numeric engines that run generated modules (never imports SymPy)."""
