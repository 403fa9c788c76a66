"""invertornot-ssg: decide at build time which images a dark mode should invert."""

__version__ = "0.1.0"
