#!/usr/bin/python3
# The PyTorch side of the GPU benchmark: inference and train step (SGD, momentum 0.9, weight
# decay 5e-4) of the torchvision models cnnscope bundles, fp32 NCHW, cudnn.benchmark on, median
# of RUNS after WARMUP; prints "model mode ms" lines (mode: infer or train) and '#' notes.
# Usage: gpu-vs-torch.py MATH(tf32|fp32) BATCH RUNS WARMUP MODEL...
import statistics
import sys
import time

import torch
import torchvision

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


def resnet_v1(model):
    """torchvision's ResNets are v1.5 (stride on the 3x3); cnnscope's are v1 (stride on the first
    1x1), so move the stride to count the same multiply-adds."""
    for layer in (model.layer2, model.layer3, model.layer4):
        block = layer[0]
        block.conv1.stride = block.conv2.stride
        block.conv2.stride = (1, 1)
    return model


def build(name):
    m = torchvision.models
    if name == "googlenet":
        return m.googlenet(weights=None, aux_logits=False, init_weights=False)
    if name in ("resnet50", "resnet101", "resnet152"):
        return resnet_v1(getattr(m, name)(weights=None))
    return getattr(m, name)(weights=None)


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
    model = build(name).to(dev)
    x = torch.randn(batch, 3, 224, 224, device=dev)
    y = torch.randint(0, 1000, (batch,), device=dev)
    model.eval()
    with torch.no_grad():
        print(f"{name} infer {median_ms(lambda: model(x)):.3f}", flush=True)
    model.train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    loss_fn = torch.nn.CrossEntropyLoss()

    def step():
        opt.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        opt.step()

    print(f"{name} train {median_ms(step):.3f}", flush=True)
    del model, opt
    torch.cuda.empty_cache()
