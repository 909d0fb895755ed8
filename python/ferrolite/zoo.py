"""The architecture zoo: classic CNNs built in code with seeded weights (``ferrolite zoo``).

    import ferrolite.zoo
    for arch in ferrolite.zoo.list():
        print(arch["name"], arch["params"], arch["macs"])
    ferrolite.zoo.export("mobilenet_v2?width=0.5", "mnv2-050.onnx")

The weights are the same as the CLI's ``zoo:NAME`` everywhere, so an exported model can be
run by any ONNX runtime and compared with ferrolite's bundle of the same name.
"""
from ._ferrolite import zoo_export as _export
from ._ferrolite import zoo_list as _list

__all__ = ["export", "list"]


def list():  # noqa: A001 - the name the CLI uses (`ferrolite zoo list`)
    """Every architecture as a dict with the keys of ``ferrolite zoo list --json``:
    name, params, macs, input (NCHW shape), options (``width``, ``resolution``), paper."""
    return _list()


def export(name, path):
    """Write architecture ``name`` (``NAME`` or ``NAME?width=W&resolution=R``) as an ONNX
    file at ``path`` (written whole or not at all); returns its parameter count.

    Raises ferrolite.InputError for an unknown name or option, ferrolite.Error when the file
    cannot be written."""
    return _export(name, path)
