"""The scored configuration: which run produced each claimed score, and with which settings.

- :mod:`auditor.scored.formats` — the line shapes a script's print and log calls write;
- :mod:`auditor.scored.logmatch` — log lines matched to the statements that printed them;
- :mod:`auditor.scored.config` — per seed log: the claimed stage, the world size, the settings
  and which code ran (read through ``Evidence.scored``).
"""
