# Exports a torch model with random weights to ONNX (opset 13), with a random input and torch's output as .npy.
"""Usage: make-onnx.py MODEL OUTDIR [SEED]

Writes OUTDIR/MODEL.onnx, OUTDIR/MODEL-input.npy and OUTDIR/MODEL-output.npy. MODEL is one of
smallconv, residual, resnet18, squeezenet1_0. The batch axis is exported as dynamic so
that torch writes the Shape/Gather/Unsqueeze/Concat chain that computes a view's target shape,
which the importer has to fold."""
import sys

import numpy as np
import torch
import torch.nn as nn


class SmallConv(nn.Module):
    """Conv + BN + ReLU + pools + a view to N x features + two linear layers + softmax."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.pool1 = nn.MaxPool2d(2, 2)
        self.conv2 = nn.Conv2d(8, 12, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(12)
        self.pool2 = nn.AvgPool2d(2, stride=2)
        self.fc1 = nn.Linear(12 * 3 * 3, 32)
        self.drop = nn.Dropout(0.3)
        self.fc2 = nn.Linear(32, 10)

    def forward(self, x):
        x = self.pool1(torch.relu(self.bn1(self.conv1(x))))
        x = self.pool2(torch.relu(self.bn2(self.conv2(x))))
        x = x.view(x.size(0), -1)
        x = self.drop(torch.tanh(self.fc1(x)))
        return torch.softmax(self.fc2(x), dim=1)


class Residual(nn.Module):
    """A ResNet basic block with a projection shortcut, a concat, leaky ReLU and a global pool."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.conv1 = nn.Conv2d(8, 16, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.conv2 = nn.Conv2d(16, 16, 3, padding=1, groups=4, bias=False)
        self.bn2 = nn.BatchNorm2d(16)
        self.down = nn.Conv2d(8, 16, 1, stride=2, bias=False)
        self.bnd = nn.BatchNorm2d(16)
        self.side = nn.Conv2d(16, 4, 1)
        self.fc = nn.Linear(20, 7)

    def forward(self, x):
        x = torch.relu(self.stem(x))
        y = torch.relu(self.bn1(self.conv1(x)))
        y = self.bn2(self.conv2(y))
        r = torch.relu(y + self.bnd(self.down(x)))
        s = torch.sigmoid(self.side(r))
        c = nn.functional.leaky_relu(torch.cat([r, s], 1), 0.1)
        c = nn.functional.adaptive_max_pool2d(c, 1)
        return self.fc(torch.flatten(c, 1))


def build(name):
    import torchvision
    if name == "smallconv":
        return SmallConv(), (3, 24, 24)
    if name == "residual":
        return Residual(), (3, 16, 16)
    if name == "resnet18":
        return torchvision.models.resnet18(), (3, 224, 224)
    if name == "squeezenet1_0":
        return torchvision.models.squeezenet1_0(), (3, 224, 224)
    raise SystemExit("unknown model " + name)


def main():
    if len(sys.argv) < 3:
        raise SystemExit(__doc__)
    name, out = sys.argv[1], sys.argv[2]
    seed = int(sys.argv[3]) if len(sys.argv) > 3 else 1
    torch.manual_seed(seed)
    model, shape = build(name)
    # Random running statistics, so that batch norm is not close to the identity.
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.5, 0.5)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.5, 0.5)
    model.eval()
    x = torch.randn(2, *shape)
    with torch.no_grad():
        y = model(x)
    path = "%s/%s.onnx" % (out, name)
    # Preserving the (eval) mode keeps BatchNormalization nodes instead of folding them
    # into the convolutions, so that the importer's batch norm is tested too.
    torch.onnx.export(model, x, path, opset_version=13, input_names=["input"],
                      output_names=["output"], dynamic_axes={"input": {0: "N"}, "output": {0: "N"}},
                      training=torch.onnx.TrainingMode.PRESERVE)
    np.save("%s/%s-input.npy" % (out, name), x.numpy().astype(np.float32))
    np.save("%s/%s-output.npy" % (out, name), y.numpy().astype(np.float32))


if __name__ == "__main__":
    main()
