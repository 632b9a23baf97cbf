# Generates tests/data/torchvision-reference.tsv: reference parameter / MAC / layer counts of torchvision models, computed with real PyTorch, used as test expectations for cnnscope.
"""Compute reference statistics for torchvision CNNs at input 1x3x224x224.

Usage:  python tests/tools/torchvision-reference.py [OUTPUT.tsv]

Needs torch and torchvision (CPU is enough; no pretrained weights are
downloaded, every model is built with weights=None).  The table is printed to
stdout and written to OUTPUT.tsv (default: tests/data/torchvision-reference.tsv
next to this script's parent directory).

Columns:
  params     trainable parameters (sum of numel of requires_grad parameters)
  weights    Conv2d / Linear weight tensors
  biases     Conv2d / Linear bias tensors
  bn_params  BatchNorm2d weight + bias
  buffers    BatchNorm running_mean + running_var (num_batches_tracked excluded)
  macs       multiply-adds of Conv2d and Linear layers only, batch 1:
               Conv2d: out.numel()/N * (in_channels/groups) * kh * kw
               Linear: in_features * out_features
  n_conv, n_linear, n_bn   number of Conv2d / Linear / BatchNorm2d modules
"""
import os
import sys

import torch
import torch.nn as nn
import torchvision
from torchvision import models

INPUT_SHAPE = (1, 3, 224, 224)

# (row name, constructor, measure MACs?)
MODELS = [
    ("alexnet", lambda: models.alexnet(weights=None), True),
    ("vgg16", lambda: models.vgg16(weights=None), True),
    ("vgg19", lambda: models.vgg19(weights=None), True),
    ("googlenet", lambda: models.googlenet(weights=None, aux_logits=False, init_weights=False), True),
    ("resnet18", lambda: models.resnet18(weights=None), True),
    ("resnet34", lambda: models.resnet34(weights=None), True),
    ("resnet50", lambda: models.resnet50(weights=None), True),
    ("resnet101", lambda: models.resnet101(weights=None), True),
    ("resnet152", lambda: models.resnet152(weights=None), True),
    ("wide_resnet50_2", lambda: models.wide_resnet50_2(weights=None), True),
    ("resnext50_32x4d", lambda: models.resnext50_32x4d(weights=None), True),
    ("densenet121", lambda: models.densenet121(weights=None), True),
    ("squeezenet1_0", lambda: models.squeezenet1_0(weights=None), True),
    ("squeezenet1_1", lambda: models.squeezenet1_1(weights=None), True),
    # Static counts only: the auxiliary classifiers do not run in eval mode,
    # so no MAC figure is given for this row.
    ("googlenet_aux", lambda: models.googlenet(weights=None, aux_logits=True, init_weights=False), False),
]

COLUMNS = ["model", "params", "weights", "biases", "bn_params", "buffers",
           "macs", "n_conv", "n_linear", "n_bn"]

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


def param_stats(model):
    params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    weights = biases = bn_params = buffers = 0
    n_conv = n_linear = n_bn = 0
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            if isinstance(m, nn.Conv2d):
                n_conv += 1
            else:
                n_linear += 1
            weights += m.weight.numel()
            if m.bias is not None:
                biases += m.bias.numel()
        elif isinstance(m, BN_TYPES):
            n_bn += 1
            if m.weight is not None:
                bn_params += m.weight.numel()
            if m.bias is not None:
                bn_params += m.bias.numel()
            if m.running_mean is not None:
                buffers += m.running_mean.numel()
            if m.running_var is not None:
                buffers += m.running_var.numel()
    # Every trainable parameter must fall in one of the three groups.
    if weights + biases + bn_params != params:
        raise RuntimeError("unclassified parameters: %d != %d"
                           % (weights + biases + bn_params, params))
    return dict(params=params, weights=weights, biases=biases,
                bn_params=bn_params, buffers=buffers,
                n_conv=n_conv, n_linear=n_linear, n_bn=n_bn)


def count_macs(model):
    total = [0]
    calls = [0]

    def conv_hook(m, inp, out):
        n = out.shape[0]
        kh, kw = m.kernel_size
        total[0] += (out.numel() // n) * (m.in_channels // m.groups) * kh * kw
        calls[0] += 1

    def linear_hook(m, inp, out):
        total[0] += m.in_features * m.out_features
        calls[0] += 1

    handles = []
    n_layers = 0
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            handles.append(m.register_forward_hook(conv_hook))
            n_layers += 1
        elif isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(linear_hook))
            n_layers += 1
    with torch.no_grad():
        model(torch.randn(*INPUT_SHAPE))
    for h in handles:
        h.remove()
    # Each layer of these models runs exactly once per forward pass.
    if calls[0] != n_layers:
        raise RuntimeError("%d hook calls for %d layers" % (calls[0], n_layers))
    return total[0]


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    out_path = argv[1] if len(argv) > 1 else os.path.join(
        here, os.pardir, "data", "torchvision-reference.tsv")
    torch.manual_seed(0)

    lines = [
        "# generated by tests/tools/torchvision-reference.py with torch %s, "
        "torchvision %s; input 1x3x224x224, batch 1; weights=None. "
        "macs = Conv2d + Linear multiply-adds only. "
        "NOTE: torchvision googlenet differs from the paper (Szegedy et al. 2014): "
        "it has BatchNorm after every conv (convs have no bias) and each "
        "inception \"5x5\" branch uses a 3x3 kernel. "
        "googlenet_aux = aux_logits=True, static counts only (macs '-')."
        % (torch.__version__, torchvision.__version__),
        "\t".join(COLUMNS),
    ]
    for name, ctor, with_macs in MODELS:
        model = ctor()
        model.eval()
        row = param_stats(model)
        row["model"] = name
        row["macs"] = count_macs(model) if with_macs else "-"
        lines.append("\t".join(str(row[c]) for c in COLUMNS))
        print(lines[-1] if len(lines) > 3 else "\n".join(lines), flush=True)

    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
