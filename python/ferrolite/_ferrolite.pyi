"""Type stubs of ferrolite's native module (the classes and errors ferrolite re-exports)."""
import os
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union, overload

import numpy as np
import numpy.typing as npt

__version__: str

class Error(Exception):
    """Every failure of ferrolite raises this or a subclass of it."""

class ModelError(Error):
    """The model (bundle) is malformed, corrupted or inconsistent."""

class InputError(Error):
    """An input does not fit the model (shape, size, type) or an image cannot be decoded."""

class UnsupportedError(Error):
    """The model needs something this runtime does not implement."""

class LimitError(Error):
    """The model or image needs more memory than the limit allows."""

class NotFoundError(Error, FileNotFoundError):
    """A file (model, image) does not exist."""

class TensorInfo:
    """One input or output of a model: name, shape (batch first, NCHW for images), dtype."""

    name: str
    shape: Tuple[int, ...]
    dtype: str

Image = Union[str, os.PathLike, npt.NDArray[np.uint8], Any]
"""A file path, a PIL image or an HxWx3 uint8 RGB array."""

class Model:
    """A loaded .flb model (or an .onnx one, converted in memory), ready to run from any
    number of Python threads."""

    def __init__(
        self,
        source: Union[str, os.PathLike, bytes],
        threads: Optional[int] = None,
        cpus: Union[str, Sequence[int], None] = None,
    ) -> None: ...
    @property
    def inputs(self) -> List[TensorInfo]: ...
    @property
    def outputs(self) -> List[TensorInfo]: ...
    @property
    def name(self) -> str: ...
    @property
    def precision(self) -> str: ...
    @property
    def labels(self) -> List[str]: ...
    @property
    def preprocess(self) -> Optional[Dict[str, Any]]: ...
    @property
    def isa(self) -> str: ...
    @property
    def threads(self) -> int: ...
    @overload
    def run(self, x: npt.ArrayLike) -> Union[npt.NDArray[np.float32], List[npt.NDArray[np.float32]]]: ...
    @overload
    def run(self, x: Mapping[str, npt.ArrayLike]) -> Dict[str, npt.NDArray[np.float32]]: ...
    def classify(self, image: Image, top: int = 5) -> List[Tuple[int, str, float]]: ...
    def classify_batch(
        self, images: Sequence[Image], top: int = 5
    ) -> List[List[Tuple[int, str, float]]]: ...
    def bench(self, runs: int = 50, warmup: int = 5) -> Dict[str, Any]: ...

def convert(
    model: Union[str, os.PathLike],
    output: Union[str, os.PathLike],
    precision: Optional[str] = None,
    calib: Union[str, os.PathLike, None] = None,
    calib_count: int = 100,
    calib_method: str = "percentile",
    eval: Union[str, os.PathLike, None] = None,
    input_shape: Optional[Sequence[int]] = None,
    mean: Union[float, Sequence[float], None] = None,
    std: Union[float, Sequence[float], None] = None,
    resize: Optional[int] = None,
    crop: Union[int, Sequence[int], None] = None,
    bgr: bool = False,
    labels: Union[str, os.PathLike, None] = None,
    name: Optional[str] = None,
    strict: bool = False,
    progress: Optional[Callable[[str, int, int], Any]] = None,
) -> Dict[str, Any]:
    """Convert an ONNX model to a .flb bundle, as `ferrolite convert` does; returns a report
    (path, bytes, ops, weights_bytes, precision, notes, skipped, records)."""

def zoo_list() -> List[Dict[str, Any]]: ...
def zoo_export(name: str, path: Union[str, os.PathLike]) -> int: ...
