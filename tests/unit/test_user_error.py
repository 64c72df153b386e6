"""UserError survives every process boundary training uses, keeping its message."""

from __future__ import annotations

import pickle

import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from model.family import DataFormatError
from train.datacheck import UserFacingLoader
from train.errors import UserError


def test_user_error_pickles_with_what_and_fix():
    copy = pickle.loads(pickle.dumps(UserError("the file x.png is empty", "re-upload it")))
    assert isinstance(copy, UserError) and (copy.what, copy.fix) == ("the file x.png is empty", "re-upload it")
    assert str(copy) == "the file x.png is empty. Fix: re-upload it"


class Broken(Dataset):
    def __init__(self, error: Exception) -> None:
        self.error = error

    def __len__(self) -> int:
        return 4

    def __getitem__(self, index: int) -> torch.Tensor:
        if index == 2:
            raise self.error
        return torch.zeros(1)


@pytest.mark.parametrize("workers", [0, 2])
@pytest.mark.parametrize("error", [UserError("images/a.png is empty", "re-upload it"),
                                   DataFormatError("images/a.png: cannot read image (OSError: truncated)")],
                         ids=["UserError", "DataFormatError"])
def test_data_errors_from_loader_workers_arrive_as_user_errors_with_their_own_message(workers, error):
    loader = UserFacingLoader(Broken(error), batch_size=1, num_workers=workers)
    with pytest.raises(UserError) as err:
        list(loader)
    text = str(err.value)
    assert text.startswith(("images/a.png is empty. Fix: re-upload it",
                            "a training sample cannot be used: images/a.png"))
    assert "Caught" not in text and "Traceback" not in text


def test_a_plain_loader_rebuilds_a_worker_user_error_as_a_user_error():
    # PyTorch rebuilds it from one message; before, the two-argument constructor made that a RuntimeError.
    loader = DataLoader(Broken(UserError("images/a.png is empty", "re-upload it")), batch_size=1, num_workers=1)
    with pytest.raises(UserError):
        list(loader)
