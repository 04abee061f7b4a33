"""The settings of a benchmark run (what ``tools/benchmark.py`` parses), checked up front."""
import dataclasses
from dataclasses import dataclass
from typing import Optional, Tuple

import torch

__all__ = ['BenchmarkOptions']


@dataclass
class BenchmarkOptions:
    """Settings of :func:`logocap_mm.benchmark.run.benchmark`.

    Weights are random (seeded by ``seed``) unless ``checkpoint`` is given.

    Attributes:
        config: LOGO-CAP config file; checkpoint: optional weights.
        device: 'cpu' or 'cuda[:N]'.
        persons: people per synthetic scene (each <= the decoder's topk).
        batch_size: batch sizes to time.
        flip: flip test (image and mirror as one batch).
        repeats, warmup: timed and untimed iterations.
        input_size: square input side (None: the config codec's).
        dekr: also time MMPose's DEKR; dekr_deform: 'mmcv' | 'torchvision' (substitute).
        compare_plain: also time the plain global path and compare its results.
        memory: 'none' | 'infer' | 'all' peak-memory measurements (fresh processes).
        memory_persons: people for the inference memory rows.
        train_batch_size: batch sizes of the training-step memory rows.
        train_input_size: input side of the training step (None: ``input_size``).
        threads: ``torch.set_num_threads`` (None: unchanged).
        image_chunk: override of ``test_cfg.image_chunk`` ('auto', 'none' or an int).
        seed: RNG seed of weights, inputs and scenes.
        variants: layout / precision variants to time (names of
            :data:`logocap_mm.benchmark.variants.VARIANTS`).
        peak: also measure this device's convolution peak and give every stage's fraction.
        cid: also time MMPose's CID (same backbone, input, flip) at batch 1, in its stock
            layout and precision and in each variant.
    """
    config: str
    checkpoint: Optional[str] = None
    device: str = 'cpu'
    persons: Tuple[int, ...] = (1, 10, 30)
    batch_size: Tuple[int, ...] = (1, 4, 8)
    flip: bool = True
    repeats: int = 5
    warmup: int = 1
    input_size: Optional[int] = None
    dekr: bool = True
    dekr_deform: str = 'mmcv'
    compare_plain: bool = False
    memory: str = 'all'
    memory_persons: Tuple[int, ...] = (1, 30)
    train_batch_size: Tuple[int, ...] = (2, 12)
    train_input_size: Optional[int] = None
    threads: Optional[int] = None
    image_chunk: Optional[str] = None
    seed: int = 0
    variants: Tuple[str, ...] = ('fp32-contiguous', )
    peak: bool = False
    cid: bool = False

    def __post_init__(self):
        for name in ('persons', 'batch_size', 'memory_persons', 'train_batch_size'):
            vals = tuple(int(v) for v in getattr(self, name))
            if not vals or any(v < 1 for v in vals):
                raise ValueError(f'--{name.replace("_", "-")} values must be >= 1, got '
                                 f'{list(vals)}')
            setattr(self, name, vals)
        if self.repeats < 1 or self.warmup < 0:
            raise ValueError(f'--repeats must be >= 1 and --warmup >= 0, got {self.repeats}, '
                             f'{self.warmup}')
        if not (self.device == 'cpu' or self.device.startswith('cuda')):
            raise ValueError(f"--device must be 'cpu' or 'cuda[:N]', got {self.device!r}")
        if self.device.startswith('cuda') and not torch.cuda.is_available():
            raise ValueError('--device cuda was given but torch.cuda.is_available() is False')
        for name in ('input_size', 'train_input_size'):
            v = getattr(self, name)
            if v is not None and (v < 64 or v % 32):
                raise ValueError(f'--{name.replace("_", "-")} must be a multiple of 32, '
                                 f'>= 64, got {v}')
        if self.dekr_deform not in ('mmcv', 'torchvision'):
            raise ValueError(f"--dekr-deform must be 'mmcv' or 'torchvision', got "
                             f'{self.dekr_deform!r}')
        if self.memory not in ('none', 'infer', 'all'):
            raise ValueError(f"--memory must be 'none', 'infer' or 'all', got {self.memory!r}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f'--threads must be >= 1, got {self.threads}')
        self.image_chunk_value()  # checks it
        from .variants import VARIANTS
        self.variants = tuple(self.variants)
        bad = [v for v in self.variants if v not in VARIANTS]
        if not self.variants or bad:
            raise ValueError(f'--variants must be among {list(VARIANTS)}, got '
                             f'{list(self.variants)}')

    def image_chunk_value(self):
        """``image_chunk`` as the ``test_cfg`` value ('auto', None or an int), or the
        config's (the string 'config') when not overridden."""
        c = self.image_chunk
        if c is None:
            return 'config'
        if c in ('auto', 'none'):
            return None if c == 'none' else c
        try:
            v = int(c)
        except (TypeError, ValueError):
            v = 0
        if v < 1:
            raise ValueError(f"--image-chunk must be 'auto', 'none' or a positive int, got "
                             f'{c!r}')
        return v

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)
