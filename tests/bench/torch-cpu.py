#!/usr/bin/python3
# The PyTorch side of the CPU benchmark: the same three measurements as bench-cpu, printed as
# "name ms" lines (median of the runs after warm-ups), on the same number of threads.
import statistics
import sys
import time

import torch
import torchvision

from torch_models import resnet_v1

threads = int(sys.argv[1]) if len(sys.argv) > 1 else 2
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
torch.set_num_threads(threads)
torch.manual_seed(0)


def median_ms(fn, warmup=2):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


def forward(model, batch):
    model.eval()
    x = torch.randn(batch, 3, 224, 224)

    def run():
        with torch.no_grad():
            model(x)
    return run


def train_step(model, batch):
    model.train()
    x = torch.randn(batch, 3, 224, 224)
    y = torch.randint(0, 1000, (batch,))
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run():
        opt.zero_grad()
        loss_fn(model(x), y).backward()
        opt.step()
    return run


print(f"# torch {torch.__version__}, torchvision {torchvision.__version__}, "
      f"{torch.get_num_threads()} threads, mkldnn {torch.backends.mkldnn.is_available()}")
print("vgg16-forward-b1 %.1f" % median_ms(forward(torchvision.models.vgg16(), 1)))
print("resnet50-forward-b8 %.1f" % median_ms(forward(resnet_v1(torchvision.models.resnet50()), 8)))
print("resnet18-train-b32 %.1f" % median_ms(train_step(torchvision.models.resnet18(), 32),
                                          warmup=1))
