"""Ferrolite: fast CNN inference on mobile-class CPUs, numpy in and out.

    import ferrolite
    model = ferrolite.Model("model.flb")            # a bundle made by `ferrolite convert`
    print(model.classify("photo.jpg")[0])           # (index, label, probability)
    y = model.run(x)                                # numpy float32 in, numpy out
    print(model.bench(runs=50)["median_ms"])        # the figures of `ferrolite bench --json`
    ferrolite.zoo.list()                            # the architectures built in code

Every failure raises ferrolite.Error or a subclass: ModelError (bad bundle), InputError
(wrong shape, undecodable image), UnsupportedError, LimitError, NotFoundError (also a
FileNotFoundError).
"""
from ._ferrolite import (  # noqa: F401
    Error,
    InputError,
    LimitError,
    Model,
    ModelError,
    NotFoundError,
    TensorInfo,
    UnsupportedError,
    __version__,
)
from . import zoo  # noqa: F401

__all__ = [
    "Error",
    "InputError",
    "LimitError",
    "Model",
    "ModelError",
    "NotFoundError",
    "TensorInfo",
    "UnsupportedError",
    "__version__",
    "zoo",
]
