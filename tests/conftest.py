"""Fixtures shared by the whole suite."""

import pytest
import torch


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a module on one intra-op thread: its tensors are tiny, so more threads only add synchronisation cost
    (badly so on a loaded 2-core machine). Use with ``pytestmark = pytest.mark.usefixtures("one_torch_thread")``."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
