"""The benchmark harness every benchmark shares: driver, stack, replay teacher, report.

A task (``bench/tasks/<name>.py``) supplies its data, prompt, replay-teacher answers and
scoring; nothing here knows any dataset.
"""
