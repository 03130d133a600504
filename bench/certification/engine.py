"""Certified probabilistic robustness by sequential sampling (the paper's Algorithm 2, batched).

For a batch of inputs, the engine draws vicinity samples in rounds, predicts their classes, and
runs a sequential test (:mod:`bench.certification.sequential`) on the count of the tested class. Each input
stops on its own while the rest continue; an input that reaches the sample budget undecided
counts as not certified.

Batching does not change the statistics: within a round, the stopping rule is evaluated after
every single sample (on prefix counts), exactly as the one-sample-at-a-time loop of
Algorithm 2 would, so an input stops at the same sample index as there; the samples drawn
after that index in the same round are discarded. Round sizes are chosen so that this waste is
small: a round never goes past the earliest point at which the input could be certified (for
an input whose samples all agree, the first round ends exactly at n_min), and otherwise grows
geometrically.

Algorithm 2 fixed: a newly seen class starts at count 1 (line 12 writes 0), and there is a
budget (the algorithm has none and may never stop at a rate near 1−κ).

For the valid tests (``sprt``, ``mixture``) the tested class must be fixed before the counted
samples are drawn: it is the prediction on the clean input, which lies in its own vicinity.

Outcomes (:data:`OUTCOMES`; a result stores the index): ``certified`` (p > 1−κ accepted at
level α), ``undecided`` (the budget ran out: not certified), and the lower-boundary stop, named
after what it rejects (:attr:`bench.certification.sequential.SequentialTest.reject_outcome`): ``not_robust``
(p ≥ 1−κ rejected: ``paper``, ``mixture``) or ``below_p1`` (only p ≥ p1 rejected, p1 > 1−κ:
``sprt``; such an input may well be robust). ``below_p1`` comes last so that the indices of the
older outcomes are unchanged.

The samples, and the model's predictions on them, come from :mod:`bench.certification.streams`: one stream
per input, shared by every setting that certifies it.

Bad model outputs are refused, never certified: the clean predictions, every drawn batch and
the candidate are checked by :func:`bench.certification.streams.check_predictions` (and the logits by
:func:`bench.certification.streams.classifier`); each error names the input and the offending value.
So are vicinity samples outside the image range [0, 1] (:func:`bench.certification.streams.check_samples`,
one min/max per forward batch): the error names the vicinity and the range it drew.
"""
from __future__ import annotations

import logging
import numbers
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from bench.certification.metrics import rates
from bench.certification.sequential import SequentialTest, make_test, n_min, validate_budget

# used here, and re-exported (__all__): callers import them from here, as before bench.certification.streams existed
from bench.certification.streams import Draw, SampleTape, check_predictions, classifier, default_batch_size  # noqa: F401
from bench.certification.vicinity import Vicinity

log = logging.getLogger(__name__)

__all__ = [
    "CertifyConfig",
    "CertifyResult",
    "Certifier",
    "OUTCOMES",
    "SampleTape",
    "certify",
    "certify_many",
    "check_predictions",
    "classifier",
    "default_batch_size",
    "summarize",
]

#: Outcome names, indexed by CertifyResult.outcome. ``not_robust``: p ≥ 1−κ rejected (paper,
#: mixture); ``below_p1``: only p ≥ p1 rejected (the SPRT's lower boundary; not a verdict of
#: non-robustness). Appended last, so older indices are unchanged.
OUTCOMES = ("certified", "not_robust", "undecided", "below_p1")
CERTIFIED, NOT_ROBUST, UNDECIDED, BELOW_P1, RUNNING = 0, 1, 2, 3, -1


@dataclass
class CertifyConfig:
    """Settings of one certification run (κ and α as in Table 1: 0.01 and 0.01)."""

    kappa: float = 0.01
    alpha: float = 0.01
    procedure: str = "paper"
    budget: int = 20_000
    batch_size: int | None = None  # images per forward; None: 4096 on CUDA, 256 on the CPU
    first_round: int = 16
    growth: float = 1.0
    max_round: int = 4096
    sprt_p1: float | None = None
    mixture_spike: float = 0.99

    def make_test(self) -> SequentialTest:
        options: dict = {}
        if self.procedure == "sprt":
            options["p1"] = self.sprt_p1
        elif self.procedure == "mixture":
            options["spike"] = self.mixture_spike
        return make_test(self.procedure, self.kappa, self.alpha, self.budget, **options)

    def __post_init__(self) -> None:
        # A budget counts samples: refuse 1000.5, "1000" or True instead of int()-ing them.
        self.budget = validate_budget(self.budget)
        for name in ("batch_size", "first_round", "max_round"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"{name} = {getattr(self, name)!r} is out of range; allowed: >= 1")
        if not self.growth > 0:
            raise ValueError(f"growth = {self.growth!r} is out of range; allowed: > 0")


@dataclass
class CertifyResult:
    """Per-input outcome of a certification run (tensors on the CPU, one entry per input)."""

    prediction: torch.Tensor  # the tested class at the stop: what the certificate is about
    samples: torch.Tensor  # samples counted by the test up to its stop
    count: torch.Tensor  # of those, how many were the tested class
    p_certify: np.ndarray  # right tail (paper) or 1/M (valid tests), at the stop
    p_not_robust: np.ndarray  # left tail (paper) or 1/M of the opposite test (of p >= p1 for sprt)
    outcome: torch.Tensor  # index into OUTCOMES
    drawn: int = 0  # samples newly drawn for this run (earlier runs on a shared tape drew the rest)
    seconds: float = 0.0  # wall time of this run, its new draws included
    config: dict = field(default_factory=dict)

    def frame(self, labels: torch.Tensor | None = None,
              clean_prediction: torch.Tensor | None = None) -> pd.DataFrame:
        """One row per input: the tidy form that jobs write to CSV."""
        df = pd.DataFrame({
            "input": np.arange(len(self.prediction)),  # position in the certified batch
            "prediction": self.prediction.numpy(),
            "samples": self.samples.numpy(),
            "count": self.count.numpy(),
            "p_certify": self.p_certify,
            "p_not_robust": self.p_not_robust,
            "outcome": [OUTCOMES[i] for i in self.outcome.tolist()],
        })
        if clean_prediction is not None:
            df.insert(0, "clean_prediction", clean_prediction.cpu().numpy())
        if labels is not None:
            df.insert(0, "label", labels.cpu().numpy())
        return df


def validate_num_classes(num_classes: object) -> int:
    """``num_classes`` as an int >= 2, or a ValueError: with one class every sample agrees and
    every input would be "certified", which says nothing about the model."""
    if (isinstance(num_classes, (bool, np.bool_)) or not isinstance(num_classes, numbers.Integral)
            or int(num_classes) < 2):
        raise ValueError(f"num_classes = {num_classes!r} is out of range; allowed: an integer >= 2 "
                         f"(with fewer than two classes there is nothing to certify)")
    return int(num_classes)


class Certifier:
    """Runs one sequential test over many inputs at once, given a way to draw predictions."""

    def __init__(self, config: CertifyConfig, num_classes: int):
        self.config = config
        self.test = config.make_test()
        self.num_classes = validate_num_classes(num_classes)
        if self.test.min_certify > self.test.budget:
            raise ValueError(
                f"budget = {self.test.budget} samples cannot certify anything at kappa = {config.kappa}, "
                f"alpha = {config.alpha} with procedure '{self.test.name}': that procedure's minimum "
                f"is {self.test.min_certify} samples (all of them agreeing), more than the budget "
                f"(for reference, the paper's n_min = {n_min(config.kappa, config.alpha)}); "
                f"raise the budget to at least {self.test.min_certify} or raise kappa"
            )
        if self.test.reject_outcome not in OUTCOMES:
            raise ValueError(f"procedure '{self.test.name}' reports outcome "
                             f"'{self.test.reject_outcome}', which is not in OUTCOMES {OUTCOMES}")
        self._reject_code = OUTCOMES.index(self.test.reject_outcome)
        n = np.arange(self.test.budget + 1)
        # Earliest n at which an input with `d` disagreements so far could certify: the first n
        # whose allowance n - certify_at[n] reaches d (a running max keeps this a lower bound).
        self._allowance = torch.from_numpy(np.maximum.accumulate(n - self.test.certify_at))
        # int32 keeps the A×m prefix tensors of a round small.
        # copies: the test's tables are read-only, shared by the tests of equal settings
        self._certify_at = torch.tensor(self.test.certify_at, dtype=torch.int32)
        self._reject_at = torch.tensor(self.test.reject_at, dtype=torch.int32)

    def _round_sizes(self, drawn: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
        cfg, budget = self.config, self.test.budget
        earliest = torch.searchsorted(self._allowance, (drawn - count).contiguous())
        earliest = torch.maximum(earliest, drawn + 1)
        geometric = torch.clamp((drawn.double() * cfg.growth).ceil().long(),
                                min=cfg.first_round, max=cfg.max_round)
        size = torch.minimum(earliest - drawn, geometric)
        return size.clamp(min=1).minimum(budget - drawn)

    def progress_bar(self, n_inputs: int, enabled: bool = True) -> tqdm:
        """The bar of :meth:`run` over the inputs decided (on stderr, gone when done)."""
        return tqdm(total=n_inputs, desc=f"certify[{self.test.name}]", unit="input", disable=not enabled, leave=False)

    def run(self, n_inputs: int, draw: Draw, candidate: torch.Tensor | None = None,
            progress: bool | tqdm = True) -> CertifyResult:
        """Certify ``n_inputs`` inputs whose vicinity predictions come from ``draw``.

        ``candidate`` (long, n_inputs) is the class tested by the valid procedures; the paper's
        procedure ignores it and tests the running majority. Every batch ``draw`` returns, and
        the candidate, is checked by :func:`check_predictions` (a ValueError naming the input
        and the value, never a certificate). An input stopped at the lower boundary gets the
        test's :attr:`~bench.certification.sequential.SequentialTest.reject_outcome`.
        ``progress``: a bar over the inputs decided, or a tqdm bar to use (one that the draws
        also report their forwards on: :func:`certify_many`).
        """
        test, K, budget = self.test, self.num_classes, self.test.budget
        running = test.running_majority
        if not running and candidate is None:
            raise ValueError(f"procedure '{test.name}' needs a candidate class fixed in advance")
        if not running:
            check_predictions(candidate, K, "candidate", torch.arange(n_inputs))
        counts = torch.zeros(n_inputs, K, dtype=torch.int32) if running else None
        cand = None if running else candidate.detach().cpu().long()
        count = torch.zeros(n_inputs, dtype=torch.long)
        drawn = torch.zeros(n_inputs, dtype=torch.long)
        stop_n = torch.zeros(n_inputs, dtype=torch.long)
        stop_v = torch.zeros(n_inputs, dtype=torch.long)
        tested = torch.zeros(n_inputs, dtype=torch.long) if running else cand.clone()
        outcome = torch.full((n_inputs,), RUNNING, dtype=torch.long)
        total_drawn = 0
        bar = progress if hasattr(progress, "update") else self.progress_bar(n_inputs, progress)
        active = torch.arange(n_inputs)
        while len(active):
            sizes = self._round_sizes(drawn[active], count[active])
            preds = draw(active, sizes)
            check_predictions(preds, K, "draw", active, sizes)
            preds = preds.detach().cpu().long()
            total_drawn += int(sizes.sum())
            A, m = len(active), int(sizes.max())
            row = torch.repeat_interleave(torch.arange(A), sizes)
            col = torch.arange(len(preds)) - torch.repeat_interleave(sizes.cumsum(0) - sizes, sizes)
            grid = torch.full((A, m), -1, dtype=torch.int16 if K < 32767 else torch.long)
            grid[row, col] = preds.to(grid.dtype)
            valid = torch.arange(m).unsqueeze(0) < sizes.unsqueeze(1)
            n_prefix = drawn[active].int().unsqueeze(1) + torch.arange(1, m + 1, dtype=torch.int32)
            if running:
                v_prefix, cls_prefix, last_counts = self._running_majority(counts[active], grid)
            else:
                hits = (grid == cand[active].unsqueeze(1)).cumsum(1, dtype=torch.int32)
                v_prefix = count[active].int().unsqueeze(1) + hits
            n_idx = n_prefix.clamp(max=budget)
            rejects = valid & (v_prefix <= self._reject_at[n_idx])
            certifies = valid & (v_prefix >= self._certify_at[n_idx])
            out_of_budget = valid & (n_prefix >= budget)
            stops = rejects | certifies | out_of_budget
            stopped = stops.any(1)
            first = torch.where(stopped, stops.long().argmax(1), sizes - 1)
            pick = torch.arange(A)
            v_at = v_prefix[pick, first]
            n_at = n_prefix[pick, first]
            # Algorithm 2, line 20: the left tail is checked first.
            verdict = torch.where(rejects[pick, first], self._reject_code,
                                  torch.where(certifies[pick, first], CERTIFIED, UNDECIDED))
            done = active[stopped]
            outcome[done] = verdict[stopped]
            stop_n[done], stop_v[done] = n_at[stopped].long(), v_at[stopped].long()
            if running:
                tested[done] = cls_prefix[pick, first][stopped]
                counts[active[~stopped]] = last_counts[~stopped]
            drawn[active] = n_at.long()
            count[active] = v_at.long()
            bar.update(int(stopped.sum()))
            active = active[~stopped]
        bar.close()
        p_cert, p_nr = test.p_values(stop_v.numpy(), stop_n.numpy())
        return CertifyResult(
            prediction=tested, samples=stop_n, count=stop_v,
            p_certify=np.asarray(p_cert, float), p_not_robust=np.asarray(p_nr, float),
            outcome=outcome, drawn=total_drawn, config=asdict(self.config),
        )

    def _running_majority(self, counts: torch.Tensor, grid: torch.Tensor):
        """Prefix counts of every class; the running majority's count and class at each prefix.

        Rows are processed in chunks so that the A×m×K prefix tensor stays small.
        """
        A, m = grid.shape
        K = self.num_classes
        v = torch.empty(A, m, dtype=torch.int32)
        cls = torch.empty(A, m, dtype=torch.long)
        last = torch.empty(A, K, dtype=torch.int32)
        step = max(1, (1 << 22) // max(1, m * K))
        for s in range(0, A, step):
            g = grid[s : s + step]
            onehot = torch.zeros(*g.shape, K + 1, dtype=torch.int32)
            onehot.scatter_(2, (g.long() + 1).unsqueeze(2), 1)  # column 0 takes the padding (-1)
            prefix = onehot[..., 1:].cumsum(1) + counts[s : s + step].unsqueeze(1)
            # argmax breaks ties by the smallest class index, as max over a dict in class order.
            best, best_cls = prefix.max(2)
            v[s : s + step], cls[s : s + step] = best, best_cls
            last[s : s + step] = prefix[:, -1]
        return v, cls, last


# --- the model-facing entry point -------------------------------------------------------------


def certify_many(
    predict: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    vicinity: Vicinity,
    num_classes: int,
    configs: list[CertifyConfig],
    seed: int = 0,
    progress: bool = True,
    first_index: int = 0,
) -> tuple[list[CertifyResult], torch.Tensor]:
    """Certify each image of ``images`` (N×C×H×W in [0,1]) within ``vicinity``, once per config.

    ``predict`` maps a batch of images to classes (:func:`classifier` wraps a model). All
    configs read the same sample streams (:class:`SampleTape`), drawn on the images' device;
    input k's stream is fixed by ``seed`` and its index ``first_index + k`` (a block of a larger
    set of inputs passes its offset and certifies as the whole set would). Forward batches hold
    at most the first config's ``batch_size`` images (see :func:`default_batch_size`), in whole
    chunks of :data:`CHUNK` when it holds one. Configs run in the given order, so the first
    one's ``seconds`` is what it costs alone. Returns one result per config and the clean
    prediction.

    Refused with a ValueError before any sampling: no configs, a bad config or ``num_classes``
    (< 2, see :class:`Certifier`), ``images`` that are not a non-empty N×C×H×W tensor. The clean
    predictions and every batch of sampled ones must be integer classes in [0, num_classes)
    (:func:`check_predictions`); the error names the input's index in ``images``. Every batch of
    vicinity samples must lie in [0, 1], up to float rounding
    (:func:`bench.certification.streams.check_samples`); the error names the vicinity and the
    range it drew.
    """
    if not configs:
        raise ValueError("certify_many needs at least one CertifyConfig")
    certifiers = [Certifier(c, num_classes) for c in configs]  # refuses bad configs before any work
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"images must be a tensor of shape N×C×H×W; got {shape}")
    if len(images) == 0:
        raise ValueError(f"images is an empty batch (shape {tuple(images.shape)}): there is nothing "
                         f"to certify; pass at least one image")
    num_classes = certifiers[0].num_classes
    batch_size = configs[0].batch_size or default_batch_size(images.device)
    clean = []
    for s in range(0, len(images), batch_size):
        batch = predict(images[s : s + batch_size])
        check_predictions(batch, num_classes, "predict (clean images)",
                          torch.arange(s, min(s + batch_size, len(images))))
        clean.append(batch.long())
    clean = torch.cat(clean)
    tape = SampleTape(predict, images, vicinity, batch_size, seed, num_classes=num_classes, first_index=first_index)
    results = []
    for certifier in certifiers:
        start, before = time.perf_counter(), tape.drawn
        # inputs are decided round by round, and a round can be most of the work: the bar also
        # counts the samples forwarded, batch by batch, so that a long round shows it is moving
        bar = certifier.progress_bar(len(images), progress)
        tape.on_forward = _forwards_on(bar, tape, before)
        try:
            result = certifier.run(len(images), tape.reader(), candidate=clean, progress=bar)
        finally:
            tape.on_forward = None
        result.drawn, result.seconds = tape.drawn - before, time.perf_counter() - start
        results.append(result)
    return results, clean.cpu()


def _forwards_on(bar: tqdm, tape: SampleTape, before: int) -> Callable[[int], None]:
    """A :attr:`SampleTape.on_forward` hook: the samples this run has forwarded, on ``bar``'s
    postfix, at most ten times a second (a refresh per small batch would cost more than it shows)."""
    last = [-1.0]

    def report(n: int) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.1:
            last[0] = now
            bar.set_postfix_str(f"{tape.drawn - before:,} samples forwarded")

    return report


def certify(
    predict: Callable[[torch.Tensor], torch.Tensor],
    images: torch.Tensor,
    vicinity: Vicinity,
    num_classes: int,
    config: CertifyConfig | None = None,
    seed: int = 0,
    progress: bool = True,
) -> tuple[CertifyResult, torch.Tensor]:
    """Certify each image of ``images`` (N×C×H×W in [0,1]) within ``vicinity`` under one
    config (:func:`certify_many` with a single setting)."""
    results, clean = certify_many(predict, images, vicinity, num_classes, [config or CertifyConfig()],
                                  seed, progress)
    return results[0], clean


def summarize(frame: pd.DataFrame) -> dict[str, float]:
    """The metrics of Table 8 (:mod:`bench.certification.metrics`), in percent, with the number of inputs
    and the mean samples drawn, from a per-input frame with ``label`` and ``clean_prediction``."""
    return {"inputs": int(len(frame)), **rates(frame), "mean_samples": float(frame["samples"].mean())}


def literal_algorithm2(next_prediction: Callable[[], int], kappa: float, alpha: float,
                       budget: int) -> tuple[int, int, int, str]:
    """Algorithm 2 of the paper for one input, as written: one sample at a time, a dictionary of
    counts, both exact binomial tests (``scipy.stats.binomtest``) after every sample.

    Two defects of the text are fixed: a new class starts at count 1 (line 12), and the loop
    ends ``undecided`` at ``budget`` samples. Returns (prediction, samples, count, outcome).
    The reference for :class:`Certifier` (tests) and for the speed benchmark.
    """
    from scipy.stats import binomtest

    counts: dict[int, int] = {}
    p0 = 1.0 - kappa
    for w in range(1, budget + 1):
        s = int(next_prediction())
        counts[s] = counts.get(s, 0) + 1
        u = min(counts, key=lambda c: (-counts[c], c))  # argmax, ties to the smaller class
        v = counts[u]
        p_left = binomtest(v, w, p0, alternative="less").pvalue
        p_right = binomtest(v, w, p0, alternative="greater").pvalue
        if p_left < alpha:
            return u, w, v, "not_robust"
        if p_right < alpha:
            return u, w, v, "certified"
    return u, budget, v, "undecided"
