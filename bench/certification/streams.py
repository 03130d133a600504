"""What the sequential tests count: a model's predicted classes on samples of each input's
vicinity (:mod:`bench.certification.engine` runs the tests on them).

- :func:`classifier` turns a model into ``images -> classes``, refusing non-finite logits;
  :func:`check_predictions` refuses any batch of predictions that is not integer classes in
  [0, num_classes) (an out-of-range class, or −1, would be certified by the valid tests, which
  only count hits of the candidate);
- :func:`check_samples` refuses vicinity samples outside the image range [0, 1] (a custom
  vicinity that forgets to clamp would otherwise be certified on inputs that are no images);
- :class:`SampleTape` draws each input's stream of vicinity samples in chunks of :data:`CHUNK`,
  chunk ``c`` of input ``k`` from its own seed (:func:`chunk_seed`), predicts them once and
  replays them to every certification setting that reads the input: on one device the stream
  depends on the seed and the input's index only, not on who reads it, in what rounds or blocks
  (CPU and CUDA generators differ);
- :data:`Draw` is how :class:`bench.certification.engine.Certifier` reads a stream (``draw(inputs, sizes)``), and
  :func:`default_batch_size` the forward batch per device.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from bench.certification.vicinity import Vicinity

__all__ = ["CHUNK", "SAMPLE_TOLERANCE", "Draw", "SampleTape", "check_predictions", "check_samples", "chunk_seed",
           "classifier", "default_batch_size"]

#: ``draw(inputs, sizes)`` returns the predicted classes of ``sizes[i]`` fresh vicinity samples
#: of input ``inputs[i]``, concatenated in that order (a 1-D long tensor of length sizes.sum()).
Draw = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def check_predictions(preds: object, num_classes: int, source: str, inputs: torch.Tensor,
                      sizes: torch.Tensor | None = None) -> None:
    """Refuse predictions that are not integer class indices in [0, num_classes).

    ``preds`` holds ``sizes[i]`` predictions of input ``inputs[i]``, in that order (``sizes``
    None: one each). Checked: a 1-D tensor of that length, an integer dtype (not bool, not
    float: a float "class" such as a NaN has no meaning), every value in [0, num_classes). Why:
    an out-of-range class, or −1 (the engine's padding value in
    :meth:`bench.certification.engine.Certifier.run`), is certified by the valid tests, which only count hits
    of the candidate, and crashes the paper's running majority. The error names ``source``, the
    input (``inputs[i]``, an index among the certified inputs) and the bad value.
    """
    expected = len(inputs) if sizes is None else int(sizes.sum())
    if not isinstance(preds, torch.Tensor):
        raise ValueError(f"{source} returned a {type(preds).__name__}; expected a 1-D tensor of "
                         f"{expected} integer class indices")
    if preds.ndim != 1 or len(preds) != expected:
        raise ValueError(f"{source} returned predictions of shape {tuple(preds.shape)}; expected "
                         f"one class per sample, shape ({expected},)")
    if preds.dtype == torch.bool or preds.dtype.is_floating_point or preds.dtype.is_complex:
        raise ValueError(f"{source} returned predictions of dtype {preds.dtype}; classes must be "
                         f"integer indices in [0, {num_classes}) (e.g. logits.argmax(1))")
    bad = (preds < 0) | (preds >= num_classes)
    if bool(bad.any()):
        j = int(bad.nonzero()[0, 0])
        i = j if sizes is None else int(torch.searchsorted(sizes.cpu().long().cumsum(0),
                                                           torch.tensor([j]), right=True)[0])
        raise ValueError(f"{source} returned class {int(preds[j])} for input {int(inputs[i])}; "
                         f"classes must lie in [0, {num_classes}) (num_classes = {num_classes})")


#: how far outside [0, 1] a vicinity sample may lie before :func:`check_samples` refuses it: room
#: for float rounding in a sampler's arithmetic, far below one grey level (1/255)
SAMPLE_TOLERANCE = 1e-6


def check_samples(samples: torch.Tensor, vicinity: object, tolerance: float = SAMPLE_TOLERANCE) -> None:
    """Refuse a batch of vicinity samples with a value outside [−tolerance, 1 + tolerance] (or NaN).

    Every vicinity is a set of images, and images are pixels in [0, 1] (the built-in samplers
    clamp to it). A sampler that leaves the range, say a custom one that adds noise without
    clamping, shows the model inputs that are no image of the vicinity, and a certificate on
    them says nothing about B(x); a model that saturates out there would be certified
    everywhere. The check is one min/max reduction over the batch about to be forwarded (one
    device sync, beside the one of the logits' finiteness check). The ValueError names the
    vicinity (its class and spec) and the observed range.
    """
    if samples.numel() == 0:
        return
    # flattened: torch.aminmax over all dims of a 4-D tensor takes a slow path (about 50x on the CPU)
    low, high = torch.stack(torch.aminmax(samples.detach().reshape(-1))).float().tolist()
    if low >= -tolerance and high <= 1.0 + tolerance:  # False for NaN too
        return
    spec = getattr(vicinity, "spec", "")
    name = type(vicinity).__name__ + (f" '{spec}'" if spec else "")
    raise ValueError(f"vicinity {name} drew samples outside the image range [0, 1]: min {low:.6g}, max "
                     f"{high:.6g} (tolerance {tolerance:g}). Vicinity samples are images with pixels in "
                     f"[0, 1], as the model's inputs are; a certificate on samples outside it says nothing "
                     f"about the vicinity. Clamp the samples to [0, 1] in the sampler (the built-in "
                     f"vicinities end with .clamp_(0.0, 1.0))")


def classifier(model: torch.nn.Module, precision=None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``images -> predicted classes`` (argmax of the logits, eval mode, no autograd).

    ``precision`` (:class:`bench.compute.precision.Precision` or its name, ``"fp32"`` or ``"bf16"``;
    None: fp32, today's behaviour bit for bit) sets how the forward passes run: under bf16
    autocast, and/or with the model (converted here, in place) and its inputs in channels_last
    format. The sampling and the sequential tests are unaffected; only the classifier's
    arithmetic changes.

    The logits must be a finite (batch, classes) tensor: argmax of NaN logits returns the NaN's
    position and argmax of +inf the inf's, classes the model never chose, which the tests would
    then certify. Otherwise a ValueError names the first offending input's index within the
    batch passed and the value. The check runs on the logits autocast returned (bf16 ones too:
    an overflow to inf in the narrower format is refused like any other).
    """
    from bench.compute.precision import Precision, autocast, prepare_input, prepare_model

    numerics = Precision.of(precision)
    prepare_model(model, numerics)

    @torch.inference_mode()
    def predict(images: torch.Tensor) -> torch.Tensor:
        model.eval()
        with autocast(images.device, numerics):
            logits = model(prepare_input(images, numerics))
        if logits.ndim != 2 or len(logits) != len(images):
            raise ValueError(f"model returned logits of shape {tuple(logits.shape)} for {len(images)} "
                             f"images; expected (batch, classes) = ({len(images)}, num_classes)")
        finite = torch.isfinite(logits)
        if not bool(finite.all()):
            row = int((~finite).any(1).nonzero()[0, 0])
            value = float(logits[row][~finite[row]][0])
            raise ValueError(f"model returned a non-finite logit ({value}) for input {row} of the "
                             f"batch; a model that outputs NaN or inf has no prediction to certify")
        return logits.argmax(1)

    return predict


def default_batch_size(device: torch.device) -> int:
    """Forward batch size: large on a GPU; on the CPU, small batches stay in cache and run
    faster per image (benchmarks/certify_speed.py, docs/scale.md)."""
    return 4096 if torch.device(device).type == "cuda" else 256


#: Samples per chunk of an input's stream (:class:`SampleTape`): each chunk is drawn from its
#: own seed, so an input's stream does not depend on how it is read. At most a chunk less one
#: sample per input and vicinity is drawn and never read (about 5 % of the samples at the
#: paper's κ = α = 1 %, whose runs need at least 459).
CHUNK = 32

_MASK = (1 << 64) - 1


def chunk_seed(seed: int, index: int, chunk: int) -> int:
    """The seed of chunk ``chunk`` of input ``index``'s stream: a 64-bit hash of (seed, index)
    (splitmix64's finaliser) plus the chunk, for :meth:`torch.Generator.manual_seed`.

    The chunk is added, not hashed, so that one input's chunks never share a seed: the CPU's
    Mersenne Twister keeps only the seed's low 32 bits (CUDA's Philox all 64), and a sum stays
    distinct there for up to 2**32 chunks, where hashed seeds could collide (the birthday bound)
    and repeat a chunk of an input's samples. Two inputs may share a chunk's seed on the CPU (a
    few per million inputs' chunks): that correlates the two inputs, and leaves each input's
    samples i.i.d."""
    z = (seed * 0x9E3779B97F4A7C15 + index * 0xBF58476D1CE4E5B9 + 1) & _MASK
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK
    return ((z ^ (z >> 31)) + chunk) & _MASK


class SampleTape:
    """Per-input streams of vicinity predictions, drawn once and replayed.

    Several certification settings on the same inputs and vicinity (the two procedures, the κ
    of Table 11, the α of Table 12, and those of every table of a model in one job) read the
    same i.i.d. stream of each input: a run consumes a prefix of every input's stream, drawing
    only the samples no earlier run has drawn. Each run's test still sees i.i.d. samples of the
    vicinity, so its guarantee is unchanged; the settings become paired (their differences are
    not sampling noise), and a table costs its longest run instead of the sum of its runs.

    An input's stream is a function of ``seed`` and the input's index (``first_index`` plus its
    position in ``images``) only: its chunk ``c`` of :data:`CHUNK` samples is drawn from a
    generator seeded with :func:`chunk_seed`. So it is the same whichever settings read it, in
    whatever order and round sizes, whichever other inputs share its forward batches, and
    however the inputs are split into blocks (on one device: CPU and CUDA generators differ).
    """

    def __init__(self, predict: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor,
                 vicinity: Vicinity, batch_size: int, seed: int, num_classes: int | None = None,
                 first_index: int = 0):
        """``num_classes``: if given, every batch ``predict`` returns is checked to be integer
        classes in [0, num_classes) (:func:`check_predictions`, naming the index of the image
        in ``images``) before it is stored; if None, only that it fits the int16 stream.
        ``batch_size``: images per forward (whole chunks when it holds one or more). Every batch
        of samples is checked to lie in [0, 1] (:func:`check_samples`) before it is predicted."""
        self.predict, self.images, self.vicinity, self.batch_size = predict, images, vicinity, batch_size
        self.chunks_per_batch = max(1, batch_size // CHUNK)
        self.seed, self.first_index, self.num_classes = int(seed), int(first_index), num_classes
        # int16 halves the memory of the streams; more classes than it holds need int32
        self.dtype = torch.int16 if (num_classes or 0) <= 1 << 15 else torch.int32
        self.gen = torch.Generator(device=images.device)
        if hasattr(vicinity, "noise") and hasattr(vicinity, "apply"):
            self._noise, self._apply = vicinity.noise, vicinity.apply
        else:  # any sampler with flat() will do (bench.api takes one): each chunk's own samples
            self._noise = lambda x, n, g: vicinity.flat(x, n, g).unflatten(0, (len(x), n))
            self._apply = lambda x, noise: noise
        self.streams: list[torch.Tensor] = [torch.empty(0, dtype=self.dtype)] * len(images)
        self.drawn = 0  # samples actually drawn and predicted, over all runs
        #: called with the number of samples after each forward batch (a progress bar's hook)
        self.on_forward: Callable[[int], None] | None = None

    def reader(self) -> Draw:
        """A fresh ``draw`` for :meth:`bench.certification.engine.Certifier.run`, from every input's stream's start."""
        position = torch.zeros(len(self.images), dtype=torch.long)

        def draw(inputs: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
            inputs, sizes = inputs.cpu(), sizes.cpu()
            end = position[inputs] + sizes
            self._extend(inputs.tolist(), end.tolist())
            out = torch.cat([self.streams[i][p:e] for i, p, e in
                             zip(inputs.tolist(), position[inputs].tolist(), end.tolist())])
            position[inputs] = end
            return out.long()

        return draw

    def _extend(self, inputs: list[int], ends: list[int]) -> None:
        """Draw and predict the chunks that input ``inputs[k]``'s stream lacks up to ``ends[k]``."""
        todo = [(i, c) for i, e in zip(inputs, ends) for c in range(len(self.streams[i]) // CHUNK, -(-e // CHUNK))]
        for s in range(0, len(todo), self.chunks_per_batch):
            part = todo[s : s + self.chunks_per_batch]
            noise = []
            for i, c in part:
                self.gen.manual_seed(chunk_seed(self.seed, self.first_index + i, c))
                noise.append(self._noise(self.images[i : i + 1], CHUNK, self.gen))
            # one apply for the whole batch: per chunk, only the generator's own calls (on a GPU
            # the per-chunk arithmetic cost more than the draw: reports/bench/certify_tape.csv)
            owners = torch.tensor([i for i, _ in part])
            batch = self._apply(self.images[owners.to(self.images.device)], torch.cat(noise)).flatten(0, 1)
            # before any prediction: samples outside [0, 1] would be certified like any others
            check_samples(batch, self.vicinity)
            # a batch_size under one chunk still bounds each forward
            preds = torch.cat([self.predict(batch[j : j + self.batch_size])
                               for j in range(0, len(batch), self.batch_size)])
            owner = owners.repeat_interleave(CHUNK)
            # checked before the cast to self.dtype below, which would wrap a large class around
            check_predictions(preds, self.num_classes or 1 << 15,
                              "predict" if self.num_classes else "predict (stored as int16)", owner)
            self.drawn += len(preds)
            for (i, _), chunk in zip(part, preds.cpu().to(self.dtype).split(CHUNK)):
                self.streams[i] = torch.cat([self.streams[i], chunk])
            if self.on_forward is not None:
                self.on_forward(len(preds))
