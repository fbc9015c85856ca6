"""Generated NumPy modules, one per model in models/ (written by `balkin generate`, do not edit).

Load them with solvers.loading.load_generated(NAME), which refuses a module whose model changed.
"""
