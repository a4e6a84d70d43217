"""ringshim command-line tooling: launcher (`ringshim run`), A/B harness
(`ringshim ab`) and the live counter reader (`ringshim stat`).  Standard
library only; runs on Python 3.11."""

__version__ = "0.1.0"
