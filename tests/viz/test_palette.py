"""The palette stays apart for colour-blind readers, and every figure draws with it.

Colour vision deficiency is simulated with Machado, Oliveira and Fernandes (2009), severity 1.0 (protanopia,
deuteranopia, tritanopia), applied to linear RGB; colours are then compared by their CIE 1976 distance in L*a*b*
(ΔE 2.3 is a just-noticeable difference; 15 tells two thin lines apart at a glance).
"""

from __future__ import annotations

import ast
import itertools
import json
import re
from pathlib import Path

import numpy as np
import pytest

from sft_utils.viz import palette
from sft_utils.viz.heatmap import STATE_COLORS, STATES

ROOT = Path(__file__).resolve().parents[2]

MACHADO_2009 = {
    "protanopia": [[0.152286, 1.052583, -0.204868], [0.114503, 0.786281, 0.099216], [-0.003882, -0.048116, 1.051998]],
    "deuteranopia": [[0.367322, 0.860646, -0.227968], [0.280085, 0.672501, 0.047413], [-0.011820, 0.042940, 0.968881]],
    "tritanopia": [[1.255528, -0.076749, -0.178779], [-0.078411, 0.930809, 0.147602], [0.004733, 0.691367, 0.303900]],
    "normal vision": np.eye(3).tolist(),
}
LINES_APART = 15.0  # curves and bars: thin marks
AREAS_APART = 8.0  # filled heatmap cells (white padding vs light-grey untrained is a step in lightness alone)


def linear_rgb(hex_colour: str) -> np.ndarray:
    digits = hex_colour.lstrip("#")
    srgb = np.array([int(digits[i : i + 2], 16) / 255 for i in (0, 2, 4)])
    return np.where(srgb <= 0.04045, srgb / 12.92, ((srgb + 0.055) / 1.055) ** 2.4)


def lab(linear: np.ndarray) -> np.ndarray:
    xyz = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]]) @ linear
    xyz = xyz / np.array([0.95047, 1.0, 1.08883])  # D65 white
    f = np.where(xyz > (6 / 29) ** 3, np.cbrt(xyz), xyz / (3 * (6 / 29) ** 2) + 4 / 29)
    return np.array([116 * f[1] - 16, 500 * (f[0] - f[1]), 200 * (f[1] - f[2])])


def seen(hex_colour: str, vision: str) -> np.ndarray:
    return lab(np.clip(np.array(MACHADO_2009[vision]) @ linear_rgb(hex_colour), 0, 1))


def closest(a: str, b: str) -> tuple[float, str]:
    """The smallest ΔE of two colours over the four visions, and which vision it is."""
    return min((float(np.linalg.norm(seen(a, v) - seen(b, v))), v) for v in MACHADO_2009)


def test_the_simulation_reproduces_known_confusions():
    # Red and green that normal vision tells apart easily merge under deuteranopia: the check can fail.
    red, green = "#d62728", "#2ca02c"  # matplotlib's tab:red and tab:green
    assert np.linalg.norm(seen(red, "normal vision") - seen(green, "normal vision")) > 60
    assert closest(red, green) < (LINES_APART, "deuteranopia")
    # White stays white, black stays black, in every simulation.
    for vision in MACHADO_2009:
        assert np.allclose(seen("#ffffff", vision), [100, 0, 0], atol=0.5)
        assert np.allclose(seen("#000000", vision), [0, 0, 0], atol=1e-6)


LINE_COLOURS = {
    **{f"run {name}": style["color"] for name, style in palette.RUN_STYLES.items()},
    **{f"series {i}": colour for i, colour in enumerate(palette.SERIES)},
}


@pytest.mark.parametrize("a, b", list(itertools.combinations(LINE_COLOURS, 2)))
def test_line_colours_stay_apart_for_colour_blind_readers(a, b):
    distance, vision = closest(LINE_COLOURS[a], LINE_COLOURS[b])
    assert distance >= LINES_APART, f"{a} and {b}: ΔE {distance:.1f} under {vision}"


@pytest.mark.parametrize("a, b", list(itertools.combinations(range(len(STATES)), 2)))
def test_heatmap_states_stay_apart_for_colour_blind_readers(a, b):
    distance, vision = closest(STATE_COLORS[a], STATE_COLORS[b])
    assert distance >= AREAS_APART, f"{STATES[a]} and {STATES[b]}: ΔE {distance:.1f} under {vision}"


def test_runs_differ_in_marker_and_line_style_too():
    styles = list(palette.RUN_STYLES.values()) + list(palette.SERIES_STYLES)
    for key in ("marker", "linestyle"):
        values = [s[key] for s in styles[: len(palette.RUN_STYLES)]]
        assert len(set(values)) == len(values), key
        values = [s[key] for s in palette.SERIES_STYLES]
        assert len(set(values)) == len(values), key
    assert [s["color"] for s in palette.SERIES_STYLES] == list(palette.SERIES)
    run_markers = {s["marker"] for s in palette.RUN_STYLES.values()}
    assert run_markers.isdisjoint(s["marker"] for s in palette.SERIES_STYLES)


def test_run_style_names_the_run_by_its_first_word():
    assert palette.run_style("masked SFT")["color"] == palette.MASKED
    assert palette.run_style("plain SFT", 1) == palette.RUN_STYLES["plain"]
    assert palette.run_style("Prompt-weighted w=0.1")["marker"] == "^"
    assert palette.run_style("float32", 1) == palette.SERIES_STYLES[1]
    assert palette.run_style("other", len(palette.SERIES_STYLES)) == palette.SERIES_STYLES[0]
    with pytest.raises(TypeError, match="label must be a str"):
        palette.run_style(3)


# --- every figure uses the palette -------------------------------------------------------------------------------

HEX = re.compile(r"(?<![\w&])#[0-9a-fA-F]{3}(?:[0-9a-fA-F]{3})?(?:[0-9a-fA-F]{2})?\b")
COLOUR_KEYWORDS = {"color", "colors", "c", "facecolor", "edgecolor", "markerfacecolor", "markeredgecolor", "cmap"}
DRAWING_CALLS = {"plot", "bar", "barh", "scatter", "fill_between", "axhline", "axvline", "hist", "errorbar"}


def notebook_code(path: Path) -> str:
    cells = json.loads(path.read_text())["cells"]
    lines = []
    for cell in cells:
        if cell["cell_type"] == "code":
            source = "".join(cell["source"])
            lines += [line if not line.lstrip().startswith(("%", "!")) else "" for line in source.splitlines()]
            lines.append("")
    return "\n".join(lines)


SOURCES = {
    **{f"sft_utils/viz/{p.name}": p.read_text() for p in sorted((ROOT / "sft_utils/viz").glob("*.py"))},
    **{f"notebooks/{p.name}": notebook_code(p) for p in sorted((ROOT / "notebooks").glob("*.ipynb"))},
}
SOURCES.pop("sft_utils/viz/palette.py")


def colour_problems(source: str) -> list[str]:
    """Colours written outside the palette: hex codes in strings, literal strings given to a colour keyword
    (named colours, "tab:red", "C0"), and drawing calls that take matplotlib's default colour cycle."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and HEX.search(node.value):  # f-strings too
            problems.append(f"line {node.lineno}: hex colour {HEX.search(node.value).group()}")
        if isinstance(node, ast.keyword) and node.arg in COLOUR_KEYWORDS:
            literal = node.value
            if isinstance(literal, ast.Constant) and isinstance(literal.value, str) and literal.value != "none":
                problems.append(f"line {literal.lineno}: {node.arg}={literal.value!r}")
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in DRAWING_CALLS:
            named = {k.arg for k in node.keywords}
            if not (named & COLOUR_KEYWORDS) and None not in named:  # None: **style
                problems.append(f"line {node.lineno}: {node.func.attr}() without a colour (the default cycle)")
    return problems


def test_the_checker_finds_colours_outside_the_palette():
    bad = 'ax.plot(x, y, color="tab:red")\nax.bar(x, y)\nstyle = f"color:#b91c1c;{x}"\nax.axhline(1, color="grey")\n'
    assert len(colour_problems(bad)) == 4
    good = 'ax.plot(x, y, **palette.run_style("masked"))\nax.bar(x, y, color=palette.BLUE, edgecolor="none")\n'
    assert colour_problems(good) == []


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_figures_take_their_colours_from_the_palette(name):
    assert colour_problems(SOURCES[name]) == [], f"{name}: use sft_utils.viz.palette"
