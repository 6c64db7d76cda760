"""Fixtures shared by the flow tests."""

import logging

import pytest


@pytest.fixture
def prompts(caplog, monkeypatch):
    """A function returning the lines the flows have shown the user so far.

    Flows log their prompts at WARNING; the program's one stderr handler adds
    the "oauth-helper: " prefix, which the end-to-end tests read.
    """
    # Once attached, that handler stops propagation to caplog's root handler.
    monkeypatch.setattr(logging.getLogger("helper"), "propagate", True)
    caplog.set_level(logging.WARNING, logger="helper")

    def shown():
        return [
            record.getMessage()
            for record in list(caplog.records)
            if record.name.startswith("helper.flows.")
            and record.levelno == logging.WARNING
        ]

    return shown
