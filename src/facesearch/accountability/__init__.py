"""Answering to people and regulators, on top of the engine: subject access, erasure and objection from one
probe photo (``rights.py``), enrolment of named subjects with their consent (``subjects.py``), and the
transparency report (``transparency.py``)."""
