"""Helpers shared by the benchmark scripts' report generators (lib.sh puts this directory on
PYTHONPATH): medians, number formatting, table cells, the problems file."""
import statistics


def med(vals):
    """The median of vals, None when there are none."""
    return statistics.median(vals) if vals else None


def fmt(v, nd=0):
    """v with thousands separators and nd decimals; "—" for None or a negative (not measured)."""
    return "—" if v is None or v < 0 else f"{v:,.{nd}f}"


def cell(vals, nd=0, unit=""):
    """A table cell: the median (with unit), then the per-round values in small print when there
    are several."""
    if not vals:
        return "—"
    s = fmt(med(vals), nd) + unit
    if len(vals) > 1:
        s += " <sub>(" + " · ".join(fmt(v, nd) for v in vals) + ")</sub>"
    return s


def read_problems(path):
    """The non-empty lines of a problems file (one problem a line)."""
    return [line.strip() for line in open(path) if line.strip()]


def problems_md(problems, none_text):
    """The "### Problems" section's lines: a bullet per problem, or none_text."""
    return ["### Problems", ""] + ([f"- {p}" for p in problems] if problems else [none_text])
