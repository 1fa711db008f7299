"""The k-mer spectrum's model: genome size, heterozygosity, error rate and coverage from the count
histogram, as GenomeScope 2.0 estimates them (Ranallo-Benavidez, Jaron and Schatz, Nature
Communications 11, 1432, 2020), written here with numpy and scipy.

The histogram beyond the error peak is a mixture of negative binomials, one per number of copies a
k-mer has in the genome: mean ``i * coverage`` for i copies, variance ``mean * (1 + overdispersion)``
(the same overdispersion for every peak, as in GenomeScope).  What each peak holds follows from the
genome:

- ploidy 1: a fraction ``1 - d`` of the genome's k-mers once, ``d`` (duplication) twice;
- ploidy 2: with ``a = (1 - r)**k`` the chance that a k-mer's window holds no heterozygous site (r:
  heterozygosity per base), a k-mer position gives two distinct k-mers seen once per haplotype
  (``2 (1 - d)(1 - a)``), one seen on both (``(1 - d) a + d (1 - a)**2``), and the duplicated
  positions the peaks at 3 and 4 copies (``2 d a (1 - a)``, ``d a**2``): GenomeScope's diploid
  model.

The fit starts at the threshold ``assemble`` chooses (the valley after the error peak,
``assembly.valley``) and ends past the last peak; it is a weighted least-squares fit (weights of
counted numbers, 1/sqrt(n)).  Both ploidies are fitted; the one that fits better wins, a near tie
going to the one that needs less duplication to do it, and a diploid fit that finds no
heterozygosity is the haploid one.  From the fit:

- ``coverage``: the k-mer coverage of one haplotype (the mean of the one-copy peak);
- ``genome_size``: the k-mers that are no errors, counted with their multiplicity (the observed
  ones from the threshold on, and the model's below it), over ``ploidy * coverage``: bases of one
  haplotype, repeats included;
- ``error_rate``: the rest of the occurrences are errors; a fraction f of erroneous k-mer
  occurrences is an error rate ``1 - (1 - f)**(1/k)`` per base;
- ``fit``: one less the model's absolute difference from the histogram over the fitted range,
  relative to the k-mers there (1.0 is a perfect fit; GenomeScope's "model fit").

When the histogram has too few k-mers or no coverage peak beyond its errors, or no model fits, the
model says why and gives no numbers.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from .assembly import valley

Floats = npt.NDArray[np.float64]

DENSE_MAX = 100_000  # counts above this are beyond any peak: they count in the totals only
MIN_KMERS = 1_000  # distinct k-mers beyond the errors needed for a model
MIN_COVERAGE = 2.0  # a coverage peak below this is not told from the errors
MIN_FIT = 0.75  # a fit worse than this gives no numbers
TIE = 0.01  # fits closer than this are a tie: the one needing less duplication wins
NO_HET = 1e-4  # a diploid fit below this heterozygosity is the haploid one


@dataclass
class SpectrumModel:
    """The model of a histogram; ``fitted`` False with a ``reason`` when there is none (then every
    estimate is None)."""

    fitted: bool
    reason: str = ""
    threshold: int = 1
    ploidy: int | None = None
    genome_size: int | None = None
    heterozygosity: float | None = None
    error_rate: float | None = None
    coverage: float | None = None
    duplication: float | None = None
    overdispersion: float | None = None
    fit: float | None = None
    k: int = 0
    fitted_range: tuple[int, int] = (0, 0)
    scale: float = 0.0  # the model's k-mer positions of one haplotype (the unique part)
    errors: tuple[float, float] = (0.0, 1.0)  # the errors' tail in the fitted range: size * count**-power
    alternative: dict[str, Any] = field(default_factory=dict)  # the other ploidy's fit: ploidy, fit

    def as_data(self) -> dict[str, Any]:
        out = asdict(self)
        out["fitted_range"] = list(self.fitted_range)
        out["errors"] = list(self.errors)
        return out

    def curve(self, x: npt.ArrayLike) -> Floats:
        """The genome's part of the model: its number of k-mers at each count of ``x`` (zeros when
        nothing is fitted); ``error_tail`` is the rest."""
        xs = np.asarray(x, np.float64)
        if not self.fitted or self.ploidy is None or self.coverage is None:
            return np.zeros(xs.shape)
        return _mixture(xs, self.ploidy, self.k, self.coverage, self.heterozygosity or 0.0,
                        self.duplication or 0.0, self.overdispersion or 0.0, self.scale)

    def error_tail(self, x: npt.ArrayLike) -> Floats:
        xs = np.asarray(x, np.float64)
        return _tail(xs, self.errors) if self.fitted else np.zeros(xs.shape)

    def summary(self) -> str:
        """One line for people."""
        if not self.fitted:
            return f"no model: {self.reason}"
        assert self.genome_size is not None and self.heterozygosity is not None
        assert self.error_rate is not None and self.coverage is not None and self.fit is not None
        kind = "haploid" if self.ploidy == 1 else "diploid"
        return (f"model ({kind}, GenomeScope 2.0's negative binomials, counts {self.fitted_range[0]}-"
                f"{self.fitted_range[1]}): genome size {self.genome_size:,} bases, heterozygosity "
                f"{self.heterozygosity:.3%}, error rate {self.error_rate:.3%}, coverage {self.coverage:.1f} "
                f"(k-mers per haplotype), fit {self.fit:.1%}")


def _weights(ploidy: int, k: int, het: float, dup: float) -> Floats:
    """What the peaks at 1, 2, ... copies hold, per k-mer position of one haplotype."""
    if ploidy == 1:
        return np.array([1 - dup, dup])
    a = (1 - het) ** k
    return np.array([2 * (1 - dup) * (1 - a), (1 - dup) * a + dup * (1 - a) ** 2, 2 * dup * a * (1 - a),
                     dup * a * a])


def _nb_pmf(x: Floats, mean: Floats, over: float) -> Floats:
    """Negative binomial probabilities of counts x (rows) for means (columns), variance mean * (1 + over)."""
    from scipy.special import gammaln

    size = mean / max(over, 1e-9)
    xx = x[:, None]
    log = (gammaln(xx + size) - gammaln(size) - gammaln(xx + 1) + size * np.log(size / (size + mean))
           + xx * np.log(mean / (size + mean)))
    return np.exp(log)


def _mixture(x: Floats, ploidy: int, k: int, cov: float, het: float, dup: float, over: float,
             scale: float) -> Floats:
    w = _weights(ploidy, k, het, dup)
    means = cov * np.arange(1, len(w) + 1, dtype=np.float64)
    return scale * (_nb_pmf(x, means, over) @ w)


@dataclass
class _Fit:
    ploidy: int
    cov: float
    het: float
    dup: float
    over: float
    scale: float
    errors: tuple[float, float]  # the error tail's size and power over the fitted range
    quality: float


def _tail(x: Floats, errors: tuple[float, float]) -> Floats:
    """The errors' tail reaching into the fitted range: size * x**-power."""
    return np.asarray(errors[0] * x ** -errors[1])


def _amounts(columns: Floats, y: Floats, sigma: Floats) -> Floats:
    """The non-negative amounts of each column (model shapes) that fit y best, weighted by 1/sigma:
    least squares of two columns, one dropped when its amount would be negative."""
    a = columns / sigma[:, None]
    b = y / sigma
    best = np.zeros(columns.shape[1])
    best_cost = float(b @ b)
    for keep in ([0, 1], [0], [1]):
        sub = a[:, keep]
        try:
            amounts = np.linalg.solve(sub.T @ sub, sub.T @ b)
        except np.linalg.LinAlgError:
            continue
        if (amounts < 0).any():
            continue
        resid = sub @ amounts - b
        if float(resid @ resid) < best_cost:
            best_cost = float(resid @ resid)
            best = np.zeros(columns.shape[1])
            best[keep] = amounts
        if len(keep) == 2:
            break  # both amounts non-negative: the unconstrained optimum is the answer
    return best


def _fits(x: Floats, y: Floats, ploidy: int, k: int, starts: list[float]) -> list[_Fit]:
    """Least-squares fits of one ploidy's model (and the errors' tail) to numbers y at counts x, one
    from each starting coverage.  The two amounts (the genome's k-mer positions, the errors' tail's
    size) are linear: solved for at every step, so the search is over the shape's parameters only."""
    from scipy.optimize import least_squares

    sigma = np.sqrt(y + 1.0)
    diploid = ploidy == 2

    def shape(p: Floats) -> tuple[Floats, float, float, float, float, float]:
        cov, het, dup, over, power = (p[0], p[1], p[2], p[3], p[4]) if diploid else (p[0], 0.0, p[1], p[2], p[3])
        columns = np.stack([_mixture(x, ploidy, k, cov, het, dup, float(np.exp(over)), 1.0), x ** -power], axis=1)
        return columns, cov, het, dup, float(np.exp(over)), power

    def residuals(p: Floats) -> Floats:
        columns = shape(p)[0]
        return np.asarray((columns @ _amounts(columns, y, sigma) - y) / sigma)

    out = []
    for cov0 in starts:
        if cov0 < 1:
            continue
        # coverage, heterozygosity (diploid only), duplication, log overdispersion, the errors' tail's power
        p0 = [cov0, *([0.005] if diploid else []), 0.01, np.log(0.2), 3.0]
        lower = [MIN_COVERAGE / 2, *([0.0] if diploid else []), 0.0, np.log(1e-6), 1.5]
        upper = [x[-1] + 1.0, *([0.25] if diploid else []), 0.5, np.log(100.0), 12.0]
        try:
            sol = least_squares(residuals, p0, bounds=(lower, upper), method="trf", max_nfev=300)
        except (ValueError, FloatingPointError, np.linalg.LinAlgError):
            continue
        columns, cov, het, dup, over, power = shape(sol.x)
        scale, size = _amounts(columns, y, sigma)
        quality = 1.0 - float(np.abs(columns @ np.array([scale, size]) - y).sum() / max(y.sum(), 1.0))
        out.append(_Fit(ploidy, float(cov), float(het), float(dup), over, float(scale), (float(size), float(power)),
                        quality))
    return out


def _choose(fits: list[_Fit]) -> _Fit | None:
    """Among the fits within TIE of the best: the one that needs the least duplication, and of those
    (within TIE again) a haploid one (a diploid fit without heterozygosity is one), else the best.
    Duplication and heterozygosity can mimic each other (a peak at twice the coverage is either
    the homozygous k-mers or duplicated ones); genomes of much duplication are the rarer."""
    fits = [f for f in fits if np.isfinite(f.quality)]
    if not fits:
        return None
    top = max(f.quality for f in fits)
    near = [f for f in fits if f.quality >= top - TIE]
    least = min(f.dup for f in near)
    near = [f for f in near if f.dup <= least + TIE]
    haploid = [f for f in near if f.ploidy == 1 or f.het < NO_HET]
    return max(haploid or near, key=lambda f: f.quality)


def fit_spectrum(counts: npt.ArrayLike, numbers: npt.ArrayLike, k: int) -> SpectrumModel:
    """The model of a histogram given as counts and the number of distinct k-mers with each count."""
    c = np.asarray(counts, np.int64)
    n = np.asarray(numbers, np.int64)
    keep = (c > 0) & (n > 0)
    c, n = c[keep], n[keep]
    total = float((c.astype(np.float64) * n).sum())
    if not len(c):
        return SpectrumModel(False, "the histogram is empty", k=k)
    dense = np.bincount(np.minimum(c, DENSE_MAX), weights=n, minlength=2).astype(np.float64)
    threshold = valley(dense.astype(np.int64))
    none = SpectrumModel(False, threshold=threshold, k=k)
    try:
        import scipy  # noqa: F401
    except ImportError:
        none.reason = "fitting needs scipy, which comes with the extra rayscript[plot] (pip install 'rayscript[plot]')"
        return none
    beyond = dense[threshold:]
    if beyond.sum() < MIN_KMERS:
        none.reason = (f"too little data: {int(beyond.sum()):,} distinct k-mers counted {threshold} times or more "
                       f"(a model needs {MIN_KMERS:,})")
        return none
    # the main peak: the most k-mers beyond the valley (ignoring the valley's own edge)
    start = threshold + 1 if threshold > 1 else 2
    if start >= len(dense) - 1:
        none.reason = "no coverage peak: no k-mers are counted more often than the errors"
        return none
    peak = start + int(np.argmax(dense[start:]))
    if (peak <= start and dense[start] <= dense[threshold]) or peak < MIN_COVERAGE:
        none.reason = ("no coverage peak beyond the errors: the histogram only falls (too little coverage, "
                       "or a genome given once)")
        return none
    last = int(min(len(dense) - 1, max(5 * peak, threshold + 10)))
    x = np.arange(threshold, last + 1, dtype=np.float64)
    y = dense[threshold:last + 1]
    with np.errstate(all="ignore"):
        fits = _fits(x, y, 1, k, [float(peak), peak / 2]) + _fits(x, y, 2, k, [peak / 2, float(peak)])
    best = _choose(fits)
    if best is None:
        none.reason = "the fit did not converge"
        return none
    others = [f for f in fits if f.ploidy != best.ploidy and np.isfinite(f.quality)]
    alternative = {"ploidy": others[0].ploidy, "fit": max(f.quality for f in others)} if others else {}
    if best.quality < MIN_FIT:
        kind = "haploid" if best.ploidy == 1 else "diploid"
        none.reason = f"no model fits: the best ({kind}) fits {round(best.quality * 100)}%"
        none.alternative = alternative
        return none
    if best.cov < MIN_COVERAGE:
        none.reason = f"the coverage peak ({best.cov:.1f}) is too low to tell from the errors"
        return none
    ploidy = 1 if best.ploidy == 2 and best.het < NO_HET else best.ploidy
    cov = best.cov * (2 if ploidy == 1 and best.ploidy == 2 else 1)
    het = best.het if ploidy == 2 else 0.0
    below = np.arange(1, threshold, dtype=np.float64)
    hidden = float((below * _mixture(below, best.ploidy, k, best.cov, best.het, best.dup, best.over,
                                       best.scale)).sum()) if len(below) else 0.0
    tail = float((x * _tail(x, best.errors)).sum())  # errors counted at the threshold or more
    seen = float((c[c >= threshold].astype(np.float64) * n[c >= threshold]).sum())
    genome_occ = min(max(seen - tail, 0.0) + hidden, total)
    errors = max(total - genome_occ, 0.0) / total if total else 0.0
    return SpectrumModel(
        True, threshold=threshold, ploidy=ploidy, genome_size=round(genome_occ / (ploidy * cov)),
        heterozygosity=het, error_rate=1.0 - (1.0 - errors) ** (1.0 / k) if k else 0.0, coverage=cov,
        duplication=best.dup, overdispersion=best.over, fit=best.quality, k=k, fitted_range=(threshold, last),
        scale=best.scale, errors=best.errors, alternative=alternative)
