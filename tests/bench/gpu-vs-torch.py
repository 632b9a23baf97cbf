#!/usr/bin/python3
# The PyTorch side of the GPU benchmark: inference and train step (SGD, momentum 0.9, weight
# decay 5e-4) of the networks cnnscope bundles, built the same in PyTorch (torch_models.py),
# fp32 NCHW, cudnn.benchmark on, median of RUNS after WARMUP; prints "model mode ms" lines (mode:
# infer or train), "# params model N AUX" lines and '#' notes.
# Usage: gpu-vs-torch.py MATH(tf32|fp32) BATCH RUNS WARMUP MODEL...
import statistics
import sys
import time

import torch

import torch_models

math, batch, runs, warmup = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
names = sys.argv[5:]
tf32 = math == "tf32"
torch.backends.cuda.matmul.allow_tf32 = tf32
torch.backends.cudnn.allow_tf32 = tf32
torch.backends.cudnn.benchmark = True
torch.manual_seed(0)
dev = torch.device("cuda")
print(f"# torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}, "
      f"{torch.cuda.get_device_name(0)}, math {math}, batch {batch}")


def median_ms(fn):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(times)


for name in names:
    model, size = torch_models.build(name)
    model = model.to(dev)
    print("# params %s %d %d" % ((name,) + torch_models.params(model)), flush=True)
    x = torch.randn(batch, 3, size, size, device=dev)
    y = torch.randint(0, 1000, (batch,), device=dev)
    model.eval()
    with torch.no_grad():
        print(f"{name} infer {median_ms(lambda: model(x)):.3f}", flush=True)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        torch_models.loss(model(x), y, loss_fn).backward()
        opt.step()

    print(f"{name} train {median_ms(step):.3f}", flush=True)
    del model, opt
    torch.cuda.empty_cache()
