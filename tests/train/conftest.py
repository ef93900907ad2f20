"""Fixtures shared by the training tests."""

import pytest

from ser_train.dataset import write_synthetic_dataset


@pytest.fixture(scope="module")
def small_dataset(tmp_path_factory):
    """A few synthetic clips per label and split (train 4, validation 1, test 2), written as parquet."""
    return write_synthetic_dataset(tmp_path_factory.mktemp("data"), seed=3, per_label={"train": 4, "validation": 1, "test": 2})
