"""ringshim command-line tooling: launcher (`ringshim run`) and A/B harness
(`ringshim ab`).  Standard library only; runs on Python 3.11."""

__version__ = "0.1.0"
