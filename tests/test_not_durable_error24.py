"""One base for the errors of an operation whose result is in place but not durable.

A backup, a restore and a salvage each raise their own error when the result is in place but an fsync
of a directory failed (``BackupNotDurableError``, ``RestoreNotDurableError``,
``SalvageNotDurableError``): the same ``report``, ``directory`` and ``reason``. They are all
``kv_backend.NotDurableError`` too, which one ``except`` catches, and stay the ``BackupError`` or
``SalvageError`` they were.
"""

from __future__ import annotations

import pickle

import pytest

import kv_backend
from kv_backend import BackupError, KVError, NotDurableError, errors
from kv_backend.backup import BackupNotDurableError, BackupReport, RestoreNotDurableError, RestoreReport
from kv_backend.salvage import SalvageError, SalvageNotDurableError, SalvageReport

CASES = [
    (BackupNotDurableError, BackupError, BackupReport),
    (RestoreNotDurableError, BackupError, RestoreReport),
    (SalvageNotDurableError, SalvageError, SalvageReport),
]
IDS = ["backup", "restore", "salvage"]


def test_it_is_exported_as_the_other_errors():
    assert errors.NotDurableError is NotDurableError is kv_backend.NotDurableError
    assert "NotDurableError" in errors.__all__ and "NotDurableError" in kv_backend.__all__
    assert issubclass(NotDurableError, KVError)


@pytest.mark.parametrize(("cls", "base", "report_type"), CASES, ids=IDS)
def test_each_is_a_not_durable_error_and_keeps_its_base(cls, base, report_type):
    report = report_type.__new__(report_type)  # (its fields do not matter here)
    error = cls("in place, but cannot make it durable", report, "/some/dir", "Input/output error")
    assert isinstance(error, NotDurableError) and isinstance(error, base) and isinstance(error, KVError)
    assert (error.report, error.directory, error.reason) == (report, "/some/dir", "Input/output error")
    assert str(error) == "in place, but cannot make it durable"
    with pytest.raises(NotDurableError):
        raise error


@pytest.mark.parametrize(("cls", "base", "report_type"), CASES, ids=IDS)
def test_each_has_the_defaults_and_pickles(cls, base, report_type):
    error = cls("message")
    assert (error.report, error.directory, error.reason) == (None, "", "")
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is cls and str(copy) == "message"
