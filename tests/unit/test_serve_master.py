"""How the serving master counts GPUs before forking: through NVIDIA's driver library, so a host without it (or a
CPU build of torch) has none, without initialising CUDA in the master."""

from __future__ import annotations

from container.serving import nvidia_driver_present


def test_no_driver_library_means_no_gpu():
    def missing(name: str) -> None:
        raise OSError(f"{name}: cannot open shared object file")

    assert nvidia_driver_present(load=missing) is False
    assert nvidia_driver_present(load=lambda name: object()) is True
