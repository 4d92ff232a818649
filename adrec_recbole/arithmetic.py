"""The arithmetic a run's numbers depend on, besides code, data, settings and seed.

On the CPU one seed gives bit-identical results on one machine (at any thread count we
measured), but not across machines: PyTorch's kernels (ATen), MKL and oneDNN choose their code by
the CPU's instruction set, kernels of different vector widths add in different orders, and the
last-bit differences grow through training. Measured on one AMD EPYC (Zen 4, AVX-512) machine,
README command 1 with ``--epochs=1`` (README, "Reproducibility on CPU"):

* as it is (AVX512): test NDCG@10 .0515;
* with all of :data:`AVX2_ENVIRONMENT` and a fresh vector cache: .0505 / Recall@10 .1005, exactly
  the figures of the AVX2 machines that made the records before 2026-12-06;
* with ``ATEN_CPU_CAPABILITY`` alone: .0509 (MKL and oneDNN count too).

So the frozen item vectors are cached per :func:`arithmetic` (a cache shared by machines of
different instruction sets, or kept across a library upgrade, is never mixed into a run), and
every benchmark record names it, and the benchmark pins AVX2 unless told otherwise
(``--arithmetic``). Import-light (torch is imported when :func:`arithmetic` is called): the
benchmark's parent process reads :data:`AVX2_ENVIRONMENT` without loading torch.
"""
import os

#: set before Python starts (the libraries read them when loaded), these make a CPU with AVX-512
#: compute as one with AVX2 only, i.e. like most x86 machines of the last ten years
AVX2_ENVIRONMENT = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def arithmetic(device):
    """What computing on ``device`` (``torch.device`` or its name) rounds like: ``{"device": "cpu"
    or the GPU's name, "cpu_capability": ATen's instruction set (CPU only, e.g. "AVX512"),
    "pinned": the :data:`AVX2_ENVIRONMENT` variables that are set, "torch": version,
    "transformers": version}``."""
    import torch
    import transformers

    device = torch.device(device)
    found = {"torch": torch.__version__, "transformers": transformers.__version__}
    if device.type == "cuda":
        found["device"] = torch.cuda.get_device_name(device)
    else:
        found["device"] = device.type
        found["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
        found["pinned"] = {name: os.environ[name] for name in AVX2_ENVIRONMENT if name in os.environ}
    return found
