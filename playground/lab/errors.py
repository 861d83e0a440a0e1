"""The one error the lab engine shows to people. No Django imports here."""

from __future__ import annotations


class LabError(Exception):
    """A bad value, an unknown worker, or an action that is not possible now.

    The message is written for the learner and can be shown as is.
    """
