"""The enhancement network at run time (numba inference and the shipped weights); never imports torch."""
