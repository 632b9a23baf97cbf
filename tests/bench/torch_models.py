# PyTorch networks built to be the same as cnnscope's bundled models, for the benchmarks: where
# torchvision's model of the same name is another variant, the one cnnscope has is written out
# here (same layers, shapes and parameter counts), so that both sides do the same work.
import torch
import torchvision
from torch import nn


def resnet_v1(model):
    """torchvision's ResNets are v1.5 (stride on the 3x3); cnnscope's are v1, as the paper (stride
    on the first 1x1): move the stride so that both count the same multiply-adds."""
    for layer in (model.layer2, model.layer3, model.layer4):
        block = layer[0]
        block.conv1.stride = block.conv2.stride
        block.conv2.stride = (1, 1)
    return model


def conv_relu(cin, cout, k, stride=1, pad=0):
    return [nn.Conv2d(cin, cout, k, stride, pad), nn.ReLU(inplace=True)]


class LectureAlexNet(nn.Sequential):
    """cnnscope's alexnet: the lecture's single tower, 227x227 input, pool before LRN."""

    def __init__(self):
        lrn = dict(size=5, alpha=1e-4, beta=0.75, k=2.0)
        super().__init__(
            *conv_relu(3, 96, 11, 4), nn.MaxPool2d(3, 2), nn.LocalResponseNorm(**lrn),
            *conv_relu(96, 256, 5, 1, 2), nn.MaxPool2d(3, 2), nn.LocalResponseNorm(**lrn),
            *conv_relu(256, 384, 3, 1, 1), *conv_relu(384, 384, 3, 1, 1),
            *conv_relu(384, 256, 3, 1, 1), nn.MaxPool2d(3, 2), nn.Flatten(),
            nn.Linear(256 * 6 * 6, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(4096, 4096), nn.ReLU(inplace=True), nn.Dropout(0.5),
            nn.Linear(4096, 1000))


class Inception(nn.Module):
    def __init__(self, cin, c1, c3r, c3, c5r, c5, pp):
        super().__init__()
        self.b1 = nn.Sequential(*conv_relu(cin, c1, 1))
        self.b2 = nn.Sequential(*conv_relu(cin, c3r, 1), *conv_relu(c3r, c3, 3, 1, 1))
        self.b3 = nn.Sequential(*conv_relu(cin, c5r, 1), *conv_relu(c5r, c5, 5, 1, 2))
        self.b4 = nn.Sequential(nn.MaxPool2d(3, 1, 1), *conv_relu(cin, pp, 1))

    def forward(self, x):
        return torch.cat([self.b1(x), self.b2(x), self.b3(x), self.b4(x)], 1)


def aux_head(cin):
    return nn.Sequential(nn.AvgPool2d(5, 3), *conv_relu(cin, 128, 1), nn.Flatten(),
                         nn.Linear(128 * 4 * 4, 1024), nn.ReLU(inplace=True), nn.Dropout(0.7),
                         nn.Linear(1024, 1000))


class CaffeGoogLeNet(nn.Module):
    """cnnscope's googlenet: the paper's network as Caffe's bvlc_googlenet lays it out (LRN, no
    batch norm, 5x5 convolutions, ceil pooling), with the two auxiliary classifiers in
    training, their losses weighted 0.3."""

    def __init__(self):
        super().__init__()
        lrn = dict(size=5, alpha=1e-4, beta=0.75, k=1.0)
        pool = dict(kernel_size=3, stride=2, ceil_mode=True)
        self.stem = nn.Sequential(
            *conv_relu(3, 64, 7, 2, 3), nn.MaxPool2d(**pool), nn.LocalResponseNorm(**lrn),
            *conv_relu(64, 64, 1), *conv_relu(64, 192, 3, 1, 1), nn.LocalResponseNorm(**lrn),
            nn.MaxPool2d(**pool))
        self.i3 = nn.Sequential(Inception(192, 64, 96, 128, 16, 32, 32),
                                Inception(256, 128, 128, 192, 32, 96, 64), nn.MaxPool2d(**pool))
        self.i4a = Inception(480, 192, 96, 208, 16, 48, 64)
        self.i4bcd = nn.Sequential(Inception(512, 160, 112, 224, 24, 64, 64),
                                   Inception(512, 128, 128, 256, 24, 64, 64),
                                   Inception(512, 112, 144, 288, 32, 64, 64))
        self.i4e5 = nn.Sequential(Inception(528, 256, 160, 320, 32, 128, 128), nn.MaxPool2d(**pool),
                                  Inception(832, 256, 160, 320, 32, 128, 128),
                                  Inception(832, 384, 192, 384, 48, 128, 128))
        self.head = nn.Sequential(nn.AvgPool2d(7, 1), nn.Dropout(0.4), nn.Flatten(),
                                  nn.Linear(1024, 1000))
        self.aux1, self.aux2 = aux_head(512), aux_head(528)

    def forward(self, x):
        a = self.i4a(self.i3(self.stem(x)))
        d = self.i4bcd(a)
        out = self.head(self.i4e5(d))
        if self.training:
            return out, self.aux1(a), self.aux2(d)
        return out


def build(name):
    """The network NAME as cnnscope has it, and its input size."""
    if name == "alexnet":
        return LectureAlexNet(), 227
    if name == "googlenet":
        return CaffeGoogLeNet(), 224
    model = getattr(torchvision.models, name)(weights=None)
    if name in ("resnet50", "resnet101", "resnet152"):
        model = resnet_v1(model)
    return model, 224


def loss(outputs, labels, fn):
    """The training loss: the main output's, plus 0.3 of each auxiliary classifier's."""
    if isinstance(outputs, tuple):
        return fn(outputs[0], labels) + 0.3 * sum(fn(o, labels) for o in outputs[1:])
    return fn(outputs, labels)


def params(model):
    """Parameters counted as cnnscope counts them: trainable values, auxiliary heads apart."""
    total = sum(p.numel() for p in model.parameters())
    aux = sum(p.numel() for n, p in model.named_parameters() if n.startswith("aux"))
    return total - aux, aux
