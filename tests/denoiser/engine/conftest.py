"""One torch thread for the denoiser tests: on a shared 2-core machine, OpenMP threads that wait on
each other make the tiny model a hundred times slower than one thread does."""

import pytest
import torch


@pytest.fixture(autouse=True, scope="module")
def one_torch_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
