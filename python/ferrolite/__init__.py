"""Ferrolite: fast CNN inference on mobile-class CPUs, numpy in and out.

    import ferrolite
    model = ferrolite.Model("model.flb")            # a bundle (or an .onnx, converted in memory)
    print(model.classify("photo.jpg")[0])           # (index, label, probability)
    y = model.run(x)                                # numpy float32 in, numpy out
    print(model.bench(runs=50)["median_ms"])        # the figures of `ferrolite bench --json`
    ferrolite.convert("m.onnx", "m.flb", precision="int8", calib="images/",
                      mean=127.5, std=127.5)        # `ferrolite convert`, same bundle bytes
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
    convert,
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
    "convert",
    "zoo",
]
