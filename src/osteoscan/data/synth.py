"""Synthetic knee-radiograph phantoms: the built-in dataset behind ``make demo`` and the tests.

These are SYNTHETIC PHANTOMS, NOT MEDICAL IMAGES. They exist so the whole pipeline can run with no
patient data and no network. Each image is a drawn AP-view knee (soft tissue, distal femur with two
condyles, proximal tibia, fibula head) whose bones carry the label signal: as the T-score falls
the cortical rims thin, trabeculae thin out and the cancellous bone grows more radiolucent
relative to the soft tissue. Per-knee spreads of the same quantities blur the classes, and
nuisance variation that says nothing about the label (exposure, zoom, rotation, blur, noise, side
markers) means only the bone's relative appearance carries it: a small CNN trained from scratch
on a few hundred phantoms clearly beats chance (held-out AUC 0.85-0.92, see
``tests/test_pipeline.py``) without acing it, and cannot cheat on brightness or markers.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from PIL import Image

from osteoscan.data.labels import ALL_CLASSES, who_class
from osteoscan.errors import BadConfigError
from osteoscan.files import atomic_write, atomic_write_json

logger = logging.getLogger(__name__)

JOINTS_FILE = "joints.json"  # the true joint centres, written when a view mix is asked for
JOINTS_CONVENTION = (
    "pixels, x right and y down, pixel i's centre at i; x,y the centre of the joint space; "
    "width the condyle width; side the patient's knee; joints listed image left to right"
)
VIEW_STREAM = 11  # the view draws come from rng([seed, VIEW_STREAM]), apart from the plan
PAIRED_FRACTION = 0.15  # share of patients with a second image (the other knee)
README_TEXT = """SYNTHETIC PHANTOMS - NOT MEDICAL IMAGES.

Every image here was drawn from random numbers by osteoscan.data.synth: a knee-radiograph-like
phantom whose cortical thickness and trabecular density fall with a made-up T-score.
No patient, scanner or real radiograph is involved. Use them to try the pipeline and in tests
only; results on them say nothing about clinical performance.
"""

# Lead side markers as 5x4 bitmaps: bright letters that say which knee, never which class.
_MARKERS = {"L": "1000 1000 1000 1000 1111", "R": "1110 1001 1110 1010 1001"}

# The label signal, per T-score unit (a WHO class step is 1.5-3 units). Tuned so that a small CNN
# trained from scratch on a few hundred phantoms clearly beats chance but stays well short of
# perfect: per-knee spreads (``Anatomy.cortex_base``, ``trabecular_bias``, ``density_bias``) blur
# the classes.
CORTEX_PER_T = 0.09  # relative cortical thickness change
TRABECULAR_PER_T = 0.12  # shift of the threshold that turns the noise field into trabeculae
MARROW_PER_T = 0.025  # change of the cancellous background density (radiolucency)
DENSITY_SPREAD = 0.05  # per-knee spread of that density, independent of the T-score


@dataclass(frozen=True)
class Anatomy:
    """One knee's geometry in anatomical units (an unzoomed image spans -1..1), defaults average.

    Sampled per patient independently of the T-score, so bone size and density spread within a
    class make the label signal subtle without being a shortcut.
    """

    mirrored: bool = False
    femur_half: float = 0.42
    tibia_half: float = 0.43
    shaft_half: float = 0.17
    condyle_height: float = 0.2
    joint_gap: float = 0.05
    tissue_half: float = 0.62
    cortex_base: float = 0.022
    trabecular_bias: float = 0.0
    density_bias: float = 0.0
    fibula: bool = True

    @classmethod
    def sample(cls, rng: np.random.Generator) -> Anatomy:
        """A random knee; the spreads are about 5-15% of each size."""
        return cls(
            mirrored=bool(rng.random() < 0.5),
            femur_half=rng.normal(cls.femur_half, 0.025),
            tibia_half=rng.normal(cls.tibia_half, 0.025),
            shaft_half=rng.normal(cls.shaft_half, 0.012),
            condyle_height=rng.normal(cls.condyle_height, 0.02),
            joint_gap=max(0.02, rng.normal(cls.joint_gap, 0.012)),
            tissue_half=rng.normal(cls.tissue_half, 0.06),
            cortex_base=rng.normal(cls.cortex_base, 0.003),
            trabecular_bias=rng.normal(cls.trabecular_bias, 0.15),
            density_bias=rng.normal(cls.density_bias, DENSITY_SPREAD),
            fibula=bool(rng.random() < 0.85),
        )

    def other_knee(self, rng: np.random.Generator) -> Anatomy:
        """The contralateral knee: mirrored, with every size a few percent different."""
        jitter = {
            name: getattr(self, name) * (1.0 + rng.normal(0.0, 0.02))
            for name in ("femur_half", "tibia_half", "shaft_half", "joint_gap", "tissue_half")
        }
        return replace(self, mirrored=not self.mirrored, **jitter)


def _sigmoid(z: np.ndarray | float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def _inside(depth: np.ndarray, edge: float) -> np.ndarray:
    """0 outside a shape, 1 inside, ramping over ``edge`` (about one pixel) for anti-aliasing."""
    return np.clip(depth / edge + 0.5, 0.0, 1.0)


def _ellipse_depth(
    x: np.ndarray, y: np.ndarray, cx: float, cy: float, rx: float, ry: float
) -> np.ndarray:
    """Approximate distance inside an ellipse (negative outside); x is a row, y a column."""
    return min(rx, ry) * (1.0 - np.sqrt(((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2))


def _trabecular_field(size: int, wavelength_px: float, rng: np.random.Generator) -> np.ndarray:
    """Band-passed noise with vertically elongated grains (load-bearing trabeculae), unit sd.

    Made at half resolution and upsampled: the grains span several pixels, and it is 4x cheaper.
    """
    small, wavelength = (size + 1) // 2, wavelength_px / 2
    fy = np.fft.fftfreq(small).astype(np.float32)[:, None] ** 2
    fx = np.fft.rfftfreq(small).astype(np.float32)[None, :] ** 2
    radius = np.sqrt(fx + fy)
    band = np.exp(-(((radius - 1.0 / wavelength) * wavelength / 0.35) ** 2))
    vertical_grain = 1.0 + 0.7 * (fx - fy) / np.maximum(fx + fy, 1e-12)
    noise = rng.standard_normal((small, small), dtype=np.float32)
    field = np.fft.irfft2(np.fft.rfft2(noise) * (band * vertical_grain), s=(small, small))
    field = Image.fromarray((field / (field.std() + 1e-12)).astype(np.float32))
    return np.asarray(field.resize((size, size), Image.Resampling.BILINEAR))


def _blur(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian blur through the FFT (scipy is not a dependency)."""
    fy = np.fft.fftfreq(image.shape[0]).astype(np.float32)[:, None]
    fx = np.fft.rfftfreq(image.shape[1]).astype(np.float32)[None, :]
    kernel = np.exp(-2.0 * (math.pi * sigma_px) ** 2 * (fx**2 + fy**2))
    return np.fft.irfft2(np.fft.rfft2(image) * kernel, s=image.shape)


def _bone(
    depth: np.ndarray, cortex: np.ndarray, trabeculae: np.ndarray, edge: float, density: float
) -> np.ndarray:
    """Attenuation of a bone: a dense cortical rim around a cancellous/medullary interior."""
    inside = _inside(depth, edge)
    marrow = _inside(depth - cortex, edge)
    return (inside - marrow) + marrow * (density + 0.45 * trabeculae)


def _knee_attenuation(
    t_score: float, a: Anatomy, size: int, pixels_per_unit: float, rng: np.random.Generator
) -> np.ndarray:
    """Upright knee on a square canvas of ``size`` pixels, joint line at the centre row.

    Shapes are in anatomical units (an unzoomed view spans -1..1); most terms depend on x or y
    alone and stay 1-D until combined, which keeps rendering fast.
    """
    coords = (np.arange(size, dtype=np.float32) + 0.5 - size / 2) / pixels_per_unit
    x, y = coords[None, :] * (-1.0 if a.mirrored else 1.0), coords[:, None]
    ax, ay = np.abs(x), np.abs(y)
    edge = 1.0 / pixels_per_unit

    # The label signal: thinner cortex, sparser trabeculae and less dense cancellous bone at lower
    # T-scores (the constants at the top of this module).
    cortex = (
        a.cortex_base * (1.0 + CORTEX_PER_T * t_score) * (1.0 + 1.6 * _sigmoid((ay - 0.35) / 0.06))
    )
    field = _trabecular_field(size, 0.05 * pixels_per_unit, rng)
    threshold = -0.1 - TRABECULAR_PER_T * t_score + a.trabecular_bias
    trabeculae = _sigmoid((field - threshold) / 0.3) * _sigmoid((0.4 - ay) / 0.06)
    density = max(0.1, 0.3 + MARROW_PER_T * t_score + a.density_bias)

    # Femur: shaft flaring into two elliptical condyles; tibia: shaft flaring into a plateau.
    rx, ry = 0.55 * a.femur_half, a.condyle_height
    condyle_y = -a.joint_gap / 2 - ry
    metaphysis = a.shaft_half + (a.femur_half - a.shaft_half) * _sigmoid((y + 0.42) / 0.09)
    condyles = np.maximum(
        _ellipse_depth(x, y, 0.45 * a.femur_half, condyle_y, rx, ry),
        _ellipse_depth(x, y, -0.45 * a.femur_half, condyle_y, rx, ry),
    )
    femur = np.maximum(np.minimum(metaphysis - ax, condyle_y - y), condyles)
    v = x / a.tibia_half
    spines = 0.035 * (np.exp(-(((v - 0.1) / 0.08) ** 2)) + np.exp(-(((v + 0.1) / 0.08) ** 2)))
    plateau = a.joint_gap / 2 + 0.012 * np.cos(v * math.pi) ** 2 + 0.08 * v**8 - spines
    flare = a.shaft_half + (a.tibia_half - a.shaft_half) * _sigmoid((0.3 - y) / 0.09)
    tibia = np.minimum(y - plateau, flare - ax)

    # Femur and tibia never touch (the joint space), so the deeper of the two is their union.
    attenuation = _bone(np.maximum(femur, tibia), cortex, trabeculae, edge, density)
    if a.fibula:
        head = _ellipse_depth(x, y, 0.82 * a.tibia_half, 0.22, 0.09, 0.11)
        shaft = np.where(y > 0.22, 0.05 - np.abs(x - 0.78 * a.tibia_half), -1.0)
        attenuation += 0.8 * _bone(np.maximum(head, shaft), cortex * 0.8, trabeculae, edge, density)
    attenuation += 0.25 * _inside(_ellipse_depth(x, y, 0.03, -0.15, 0.14, 0.17), 0.03)
    tissue_width = a.tissue_half * (1.0 + 0.08 * np.exp(-((y / 0.3) ** 2)))
    attenuation += 0.3 * _inside(tissue_width - ax, 0.04)
    return attenuation.astype(np.float32)


@dataclass(frozen=True)
class JointTruth:
    """Where a phantom's knee joint really is, in image pixels (pixel i's centre at i).

    ``x, y``: the centre of the joint space (between the condyles, midway across the gap);
    ``width``: the condyle width (outer edge to outer edge); ``side``: the patient's knee.
    """

    x: float
    y: float
    width: float
    side: str

    def to_dict(self) -> dict[str, float | str]:
        return {
            "x": round(self.x, 2),
            "y": round(self.y, 2),
            "width": round(self.width, 2),
            "side": self.side,
        }


def _pose(
    knee: np.ndarray, width: int, height: int, centre: tuple[float, float], angle: float
) -> np.ndarray:
    """An upright knee canvas (joint at its centre) rotated by ``angle`` onto a width x height
    detector with the joint at ``centre``."""
    canvas = knee.shape[0]
    cos, sin = math.cos(angle), math.sin(angle)
    cx, cy = centre
    pose = (cos, sin, canvas / 2 - cos * cx - sin * cy, -sin, cos, canvas / 2 + sin * cx - cos * cy)
    posed = Image.fromarray(knee).transform(
        (width, height), Image.Transform.AFFINE, pose, Image.Resampling.BILINEAR
    )
    return np.asarray(posed, dtype=np.float32)


def _expose(attenuation: np.ndarray, rng: np.random.Generator, marker: str) -> np.ndarray:
    """Exposure and detector: saturating response, gain, offset, heel effect, a side marker,
    blur and noise; returns uint8."""
    height, width = attenuation.shape
    image = 1.0 - np.exp(-rng.uniform(0.9, 1.5) * attenuation)
    image = rng.uniform(0.02, 0.12) + rng.uniform(0.65, 1.0) * image
    image *= 1.0 + rng.uniform(-0.12, 0.12) * np.linspace(-1.0, 1.0, height)[:, None]
    if rng.random() < 0.3:
        _stamp_marker(image, marker, rng)
    image = np.clip(_blur(image, rng.uniform(0.3, 1.3) * min(height, width) / 320), 0.0, 1.0)
    noise = rng.standard_normal(image.shape, dtype=np.float32)
    image = image + rng.uniform(0.01, 0.035) * np.sqrt(image) * noise
    image = np.clip(image, 0.0, 1.0) ** rng.uniform(0.75, 1.35)
    return np.round(image * 255.0).astype(np.uint8)


def _side(anatomy: Anatomy) -> str:
    return "left" if anatomy.mirrored else "right"


def render_phantom(
    t_score: float,
    rng: np.random.Generator,
    image_size: int = 320,
    anatomy: Anatomy | None = None,
) -> np.ndarray:
    """One phantom as a uint8 2-D array (H, W): bright bone on a dark background.

    ``rng`` draws the pose, exposure and noise (and the anatomy when none is given); the number of
    draws never depends on ``t_score``, so one rng state renders the same view at any T-score.
    """
    return _render_single(t_score, rng, image_size, anatomy)[0]


def _render_single(
    t_score: float, rng: np.random.Generator, image_size: int, anatomy: Anatomy | None
) -> tuple[np.ndarray, tuple[JointTruth, ...]]:
    if anatomy is None:
        anatomy = Anatomy.sample(rng)
    zoom = rng.uniform(0.8, 1.2)
    angle = math.radians(rng.uniform(-8.0, 8.0))
    shift = rng.uniform(-0.08, 0.08, size=2) * image_size / 2

    # Draw the knee upright on a larger canvas, then pose it on the detector (rotate + shift),
    # the canvas margin covering the corners a rotated view would otherwise leave empty.
    canvas = int(math.ceil(image_size * 1.22))
    pixels_per_unit = zoom * image_size / 2
    knee = _knee_attenuation(t_score, anatomy, canvas, pixels_per_unit, rng)
    centre = (image_size / 2 + shift[0], image_size / 2 + shift[1])
    attenuation = _pose(knee, image_size, image_size, centre, angle)
    image = _expose(attenuation, rng, "L" if anatomy.mirrored else "R")
    truth = JointTruth(
        centre[0] - 0.5, centre[1] - 0.5, 2 * anatomy.femur_half * pixels_per_unit, _side(anatomy)
    )
    return image, (truth,)


def _render_knees(
    t_score: float,
    rng: np.random.Generator,
    width: int,
    height: int,
    knees: list[tuple[Anatomy, tuple[float, float], float, float]],
) -> tuple[np.ndarray, tuple[JointTruth, ...]]:
    """Knees given as (anatomy, joint centre, pixels per unit, angle) on one width x height
    detector; overlapping soft tissue merges (the denser of the two, not their sum)."""
    attenuation = np.zeros((height, width), dtype=np.float32)
    truths = []
    for anatomy, centre, pixels_per_unit, angle in knees:
        corners = [(0, 0), (width, 0), (0, height), (width, height)]
        reach = max(math.hypot(x - centre[0], y - centre[1]) for x, y in corners)
        canvas = int(math.ceil(2 * reach)) + 4
        with np.errstate(over="ignore"):  # far along a long shaft the sigmoids saturate
            knee = _knee_attenuation(t_score, anatomy, canvas, pixels_per_unit, rng)
        attenuation = np.maximum(attenuation, _pose(knee, width, height, centre, angle))
        truths.append(
            JointTruth(
                centre[0] - 0.5,
                centre[1] - 0.5,
                2 * anatomy.femur_half * pixels_per_unit,
                _side(anatomy),
            )
        )
    marker = "L" if knees[-1][0].mirrored else "R"
    return _expose(attenuation, rng, marker), tuple(truths)


def _render_bilateral(
    t_score: float, rng: np.random.Generator, image_size: int, anatomy: Anatomy | None
) -> tuple[np.ndarray, tuple[JointTruth, ...]]:
    """Both knees side by side on a 7:4 detector, displayed as facing the patient: the right
    knee on the image's left."""
    right = replace(anatomy or Anatomy.sample(rng), mirrored=False)
    left = right.other_knee(rng)
    width, height = int(round(image_size * 1.75)), image_size
    pixels_per_unit = rng.uniform(0.65, 0.85) * image_size / 2
    knees = []
    for anatomy_, x_fraction in ((right, 0.27), (left, 0.73)):
        centre = (
            width * (x_fraction + rng.uniform(-0.02, 0.02)),
            height * (0.5 + rng.uniform(-0.08, 0.08)),
        )
        knees.append((anatomy_, centre, pixels_per_unit, math.radians(rng.uniform(-6.0, 6.0))))
    return _render_knees(t_score, rng, width, height, knees)


def _render_long_leg(
    t_score: float, rng: np.random.Generator, image_size: int, anatomy: Anatomy | None
) -> tuple[np.ndarray, tuple[JointTruth, ...]]:
    """A zoomed-out view 2.5 times as tall as wide: long femoral and tibial shafts with the joint
    anywhere in the middle half of the height."""
    anatomy = anatomy or Anatomy.sample(rng)
    width, height = image_size, int(round(image_size * 2.5))
    pixels_per_unit = rng.uniform(0.45, 0.6) * image_size / 2
    centre = (width * (0.5 + rng.uniform(-0.06, 0.06)), height * rng.uniform(0.25, 0.75))
    angle = math.radians(rng.uniform(-4.0, 4.0))
    return _render_knees(t_score, rng, width, height, [(anatomy, centre, pixels_per_unit, angle)])


_VIEW_RENDERERS = {
    "single": _render_single,
    "bilateral": _render_bilateral,
    "long-leg": _render_long_leg,
}
VIEWS = tuple(_VIEW_RENDERERS)
# The mix ``views="mixed"`` asks for: the single-knee close-ups most sets hold, plus the bilateral
# and long-leg views clinics also produce. ``views=None`` keeps the historical single-only set.
DEFAULT_VIEW_MIX = {"single": 0.5, "bilateral": 0.3, "long-leg": 0.2}


def render_view(
    view: str,
    t_score: float,
    rng: np.random.Generator,
    image_size: int = 320,
    anatomy: Anatomy | None = None,
) -> tuple[np.ndarray, tuple[JointTruth, ...]]:
    """A phantom of one view (``VIEWS``) and the true joint centre of each knee in it, image
    left to right. ``image_size`` is the shorter side; "single" is :func:`render_phantom`'s
    image for the same rng state."""
    if view not in _VIEW_RENDERERS:
        raise BadConfigError(f"synthetic view {view!r}: use one of {', '.join(VIEWS)}")
    return _VIEW_RENDERERS[view](t_score, rng, image_size, anatomy)


def parse_view_mix(text: str) -> dict[str, float]:
    """``"mixed"`` (:data:`DEFAULT_VIEW_MIX`), one view name, or ``"single=0.6,bilateral=0.4"``;
    the shares are normalised to sum to 1."""
    if text == "mixed":
        return dict(DEFAULT_VIEW_MIX)
    mix: dict[str, float] = {}
    for part in text.split(","):
        name, _, share = part.strip().partition("=")
        if name not in _VIEW_RENDERERS:
            raise BadConfigError(
                f"synthetic views {text!r}: {name!r} is not one of {', '.join(VIEWS)} (or 'mixed')"
            )
        try:
            mix[name] = float(share) if share else 1.0
        except ValueError:
            raise BadConfigError(
                f"synthetic views {text!r}: share {share!r} is not a number"
            ) from None
    total = sum(mix.values())
    if total <= 0 or any(value < 0 for value in mix.values()):
        raise BadConfigError(f"synthetic views {text!r}: shares must be >= 0 and not all 0")
    return {name: value / total for name, value in mix.items()}


def _stamp_marker(image: np.ndarray, letter: str, rng: np.random.Generator) -> None:
    """A bright lead letter on a grey plate in a random corner, in place."""
    cell = max(1, image.shape[0] // 64)
    bitmap = np.array([[int(bit) for bit in row] for row in _MARKERS[letter].split()])
    glyph = np.kron(bitmap, np.ones((cell, cell)))
    plate = np.full((glyph.shape[0] + 2 * cell, glyph.shape[1] + 2 * cell), 0.45)
    plate[cell:-cell, cell:-cell] = np.maximum(0.45, glyph)
    margin = 2 * cell
    top = margin if rng.random() < 0.5 else image.shape[0] - margin - plate.shape[0]
    left = margin if rng.random() < 0.5 else image.shape[1] - margin - plate.shape[1]
    image[top : top + plate.shape[0], left : left + plate.shape[1]] = plate


def _clipped_t_score(value: float) -> float:
    """Rounded to the manifest's 2 decimals first, so the label is computed from what is stored."""
    return round(float(np.clip(value, -5.0, 3.0)), 2)


def _plan(n: int, rng: np.random.Generator) -> list[tuple[str, float, Anatomy]]:
    """(patient_id, t_score, anatomy) for each of the n images, a patient's two knees adjacent.

    T-scores mix healthy (~0) and osteoporotic (~-3) bone for roughly 40/20/40 % WHO classes.
    The other knee's T-score differs a little but stays in the same WHO class.
    """
    plan: list[tuple[str, float, Anatomy]] = []
    patients = 0
    while len(plan) < n:
        patients += 1
        patient_id, anatomy = f"P{patients:04d}", Anatomy.sample(rng)
        t_score = _clipped_t_score(rng.normal(0.0 if rng.random() < 0.45 else -3.0, 0.9))
        plan.append((patient_id, t_score, anatomy))
        if len(plan) < n and rng.random() < PAIRED_FRACTION:
            other = _clipped_t_score(t_score + rng.normal(0.0, 0.15))
            other = other if who_class(other) == who_class(t_score) else t_score
            plan.append((patient_id, other, anatomy.other_knee(rng)))
    return plan


def _choose_views(n: int, views: Mapping[str, float] | None, seed: int) -> list[str]:
    """Each image's view; its own rng, so the plan of patients is the same with any mix."""
    if views is None:
        return ["single"] * n
    names = list(views)
    unknown = [name for name in names if name not in _VIEW_RENDERERS]
    if unknown or not names:
        raise BadConfigError(f"synthetic views {dict(views)}: use some of {', '.join(VIEWS)}")
    shares = np.array([views[name] for name in names], dtype=float)
    if (shares < 0).any() or shares.sum() <= 0:
        raise BadConfigError(f"synthetic views {dict(views)}: shares must be >= 0, not all 0")
    chooser = np.random.default_rng([seed, VIEW_STREAM])
    return [names[i] for i in chooser.choice(len(names), size=n, p=shares / shares.sum())]


def _png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


def make_synthetic_dataset(
    out_dir: Path,
    n: int = 300,
    seed: int = 0,
    image_size: int = 320,
    views: Mapping[str, float] | None = None,
) -> Path:
    """Write n phantom radiographs and a manifest; return the manifest path.

    Layout: ``<class>/synth_0001.png`` per WHO class, ``README.txt``, and ``manifest.csv``
    (``path,patient_id,t_score,label``), written last so its presence means the set is complete.
    The same seed gives byte-identical files. Older ``synth_*.png`` files not in this set are
    removed so that a folder scan sees exactly the manifest.

    ``views`` (e.g. :data:`DEFAULT_VIEW_MIX`, or :func:`parse_view_mix`'s result) draws each
    image's view from that mix, with the same patients and T-scores as without it, and writes
    ``joints.json``: per image path its view and the true joint centre of every knee
    (:class:`JointTruth`). ``None`` writes the single-knee set exactly as before, no sidecar.
    """
    if n < 1:
        raise BadConfigError(f"synthetic dataset size n={n}: use at least 1 image")
    if image_size < 32:
        raise BadConfigError(f"synthetic image_size={image_size}: use at least 32 pixels")
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= 2**32 - 1:
        raise BadConfigError(f"synthetic seed={seed!r}: use a whole number from 0 to {2**32 - 1}")
    out_dir = Path(out_dir)
    rng = np.random.default_rng(seed)
    plan = _plan(n, rng)
    chosen = _choose_views(len(plan), views, seed)
    rows, joints = [], {}
    for index, ((patient_id, t_score, anatomy), view) in enumerate(
        zip(plan, chosen, strict=True), start=1
    ):
        label = who_class(t_score)
        relative = f"{label}/synth_{index:04d}.png"
        image, truths = render_view(view, t_score, rng, image_size, anatomy)
        atomic_write(out_dir / relative, _png_bytes(image))
        rows.append((relative, patient_id, f"{t_score:.2f}", label))
        joints[relative] = {"view": view, "joints": [truth.to_dict() for truth in truths]}
    atomic_write(out_dir / "README.txt", README_TEXT.encode())
    if views is None:
        (out_dir / JOINTS_FILE).unlink(missing_ok=True)
    else:
        sidecar = {"convention": JOINTS_CONVENTION, "images": joints}
        atomic_write_json(out_dir / JOINTS_FILE, sidecar)

    written = {row[0] for row in rows}
    for label in ALL_CLASSES:
        for stale in (out_dir / label).glob("synth_*.png"):
            if f"{label}/{stale.name}" not in written:
                stale.unlink()

    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(("path", "patient_id", "t_score", "label"))
    writer.writerows(rows)
    manifest = out_dir / "manifest.csv"
    atomic_write(manifest, text.getvalue().encode())
    logger.info(
        "wrote %d synthetic phantoms of %d patients to %s", n, len({r[1] for r in rows}), out_dir
    )
    return manifest
