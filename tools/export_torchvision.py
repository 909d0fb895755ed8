#!/usr/bin/env python3
"""Export torchvision classic CNNs with random weights to ONNX (legacy TorchScript exporter).

  python3 export_torchvision.py [--out models] [--opset 17] NAME[:opts] ...

NAME is a torchvision.models builder (resnet18, ...). Options after ':' (comma separated):
  dyn       -> dynamic_axes for batch on input and output
  op13      -> opset 13 instead of the default
  tin       -> transform_input=True (googlenet / inception_v3)
Weights: torch.manual_seed(0) then the builder's own init; BatchNorm affine params are
randomised (gamma~U(0.5,1.5), beta~N(0,0.1)) and running stats are accumulated from
3 random train-mode batches (momentum=None => exact cumulative average), then eval().
Input: 1x3x224x224 (inception_v3: 299x299).
"""
import argparse
import os
import time

import torch
import torchvision


def build(name, opts):
    torch.manual_seed(0)
    kw = {"weights": None}
    if name in ("googlenet", "inception_v3"):
        kw["aux_logits"] = False
        kw["init_weights"] = True
        if "tin" in opts:
            kw["transform_input"] = True
    m = getattr(torchvision.models, name)(**kw)
    return m


def calibrate_bn(m, size, batches=3, bs=4):
    bns = [mod for mod in m.modules() if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm)]
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for bn in bns:
            bn.weight.copy_(torch.rand(bn.weight.shape, generator=g) + 0.5)
            bn.bias.copy_(torch.randn(bn.bias.shape, generator=g) * 0.1)
            bn.reset_running_stats()
            bn.momentum = None
    m.train()
    with torch.no_grad():
        for _ in range(batches):
            m(torch.randn(bs, 3, size, size, generator=g))
    m.eval()
    return len(bns)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("models", nargs="+")
    ap.add_argument("--out", default="target/unseen-models")
    ap.add_argument("--opset", type=int, default=17)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    for spec in a.models:
        name, _, o = spec.partition(":")
        opts = set(filter(None, o.split(",")))
        size = 299 if name == "inception_v3" else 224
        opset = 13 if "op13" in opts else a.opset
        t0 = time.time()
        m = build(name, opts)
        nbn = calibrate_bn(m, size)
        x = torch.randn(1, 3, size, size)
        fname = name + ("_tin" if "tin" in opts else "") + ("_dyn" if "dyn" in opts else "") + \
            (f"_op{opset}" if opset != 17 else "") + ".onnx"
        path = os.path.join(a.out, fname)
        dyn = {"input": {0: "batch"}, "output": {0: "batch"}} if "dyn" in opts else None
        torch.onnx.export(m, (x,), path, input_names=["input"], output_names=["output"],
                          opset_version=opset, dynamic_axes=dyn, do_constant_folding=True,
                          dynamo=False)
        print(f"{fname}: {nbn} BN layers, {os.path.getsize(path)/1e6:.1f} MB, "
              f"{time.time()-t0:.1f}s", flush=True)


if __name__ == "__main__":
    main()
