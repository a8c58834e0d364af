"""The records validator: training logs and submission.json → the per-seed table (PG3xx).

- :mod:`auditor.records.patterns` — the catalogue of log line shapes;
- :mod:`auditor.records.logparse` — logs → runs, streamed, with the line of every figure;
- :mod:`auditor.records.claims` — what submission.json claims, in its many shapes;
- :mod:`auditor.records.analysis` — a folder → per-seed rows and facts (``Evidence.records``);
- :mod:`auditor.records.constants` — the cap, the budgets, tokenizer families and val constants;
- :mod:`auditor.records.stats` — significance tests (scipy, optional);
- :mod:`auditor.records.samples` — small hand-written logs for rule cases and tests.
"""
