"""Altair charts of the review app, drawn from the frames of ``data`` (aggregates only)."""
from __future__ import annotations

import altair as alt
import pandas as pd

REAL = "#1f6fb4"
SYNTHETIC = "#f28e2b"
SERIES = "tableau10"
RISK_COLORS = {"low": "#1a7f37", "medium": "#e69f00", "high": "#b2182b", "not evaluated": "#9e9e9e"}


def tradeoff(frame: pd.DataFrame, selected: list[str]) -> alt.LayerChart:
    """Fidelity (x) against the worst membership-attack AUC (y) of every evaluated release; selected ones labelled."""
    data = frame.assign(selected=frame["release_id"].isin(selected))
    base = alt.Chart(data).encode(
        x=alt.X("fidelity:Q", title="overall fidelity (higher is better)", scale=alt.Scale(zero=False, padding=20)),
        y=alt.Y("mia_auc:Q", title="worst attack AUC (0.5 = guess)", scale=alt.Scale(zero=False, padding=20)),
    )
    points = base.mark_point(filled=True).encode(
        color=alt.Color("risk_level:N", title="risk level",
                        scale=alt.Scale(domain=list(RISK_COLORS), range=list(RISK_COLORS.values()))),
        size=alt.condition("datum.selected", alt.value(220), alt.value(70)),
        tooltip=["release_id", "generator", alt.Tooltip("fidelity:Q", format=".3f"),
                 alt.Tooltip("mia_auc:Q", format=".3f", title="worst MIA AUC"), "attack", "risk_level", "epsilon"],
    )
    labels = base.transform_filter("datum.selected").mark_text(align="left", dx=9, fontSize=11).encode(text="generator:N")
    chance = alt.Chart(pd.DataFrame({"y": [0.5]})).mark_rule(strokeDash=[4, 3], color="#999").encode(y="y:Q")
    return alt.layer(chance, points, labels).properties(height=340)


def marginal(frame: pd.DataFrame, *, title: str) -> alt.Chart:
    """Real vs synthetic frequencies of one column (categories or bins, in their stored order)."""
    order = frame.drop_duplicates("label").sort_values("order")["label"].tolist()
    return (
        alt.Chart(frame, title=title)
        .mark_bar()
        .encode(
            x=alt.X("label:N", sort=order, title=None, axis=alt.Axis(labelAngle=-40, labelLimit=140)),
            xOffset=alt.XOffset("side:N", sort=["real", "synthetic"]),
            y=alt.Y("frequency:Q", title="share of rows"),
            color=alt.Color("side:N", scale=alt.Scale(domain=["real", "synthetic"], range=[REAL, SYNTHETIC]),
                            legend=alt.Legend(orient="top", title=None)),
            tooltip=["label", "side", alt.Tooltip("frequency:Q", format=".4f")],
        )
        .properties(height=260)
    )


def pair_heatmap(frame: pd.DataFrame, *, title: str, cell: int = 22) -> alt.Chart:
    """Pair-trend similarity as a symmetric matrix of the table's columns (0 red .. 1 green)."""
    both = pd.concat([frame, frame.rename(columns={"column_1": "column_2", "column_2": "column_1"})], ignore_index=True)
    labels = sorted(set(both["column_1"]))
    axis = alt.Axis(labelLimit=140, labelOverlap=False)
    return (
        alt.Chart(both, title=title)
        .mark_rect()
        .encode(
            x=alt.X("column_2:N", title=None, sort=labels, scale=alt.Scale(domain=labels),
                    axis=alt.Axis(labelAngle=-45, labelLimit=140, labelOverlap=False)),
            y=alt.Y("column_1:N", title=None, sort=labels, scale=alt.Scale(domain=labels), axis=axis),
            color=alt.Color("value:Q", title="similarity", scale=alt.Scale(domain=[0, 1], scheme="redyellowgreen")),
            tooltip=["column_1", "column_2", "metric", alt.Tooltip("value:Q", format=".3f")],
        )
        .properties(height=alt.Step(cell), width=alt.Step(cell))
    )


def roc(frame: pd.DataFrame, *, title: str) -> alt.LayerChart:
    """ROC curves of one attack, one line per release, with the diagonal of a random guess."""
    data = frame.assign(label=frame["release_id"] + " (AUC " + frame["auc"].map(lambda v: f"{v:.3f}") + ")")
    diagonal = alt.Chart(pd.DataFrame({"fpr": [0.0, 1.0], "tpr": [0.0, 1.0]})).mark_line(strokeDash=[4, 3], color="#999")
    diagonal = diagonal.encode(x="fpr:Q", y="tpr:Q")
    lines = alt.Chart(data).mark_line(interpolate="step-after").encode(
        x=alt.X("fpr:Q", title="false positive rate", scale=alt.Scale(domain=[0, 1])),
        y=alt.Y("tpr:Q", title="true positive rate", scale=alt.Scale(domain=[0, 1])),
        color=alt.Color("label:N", title=None, scale=alt.Scale(scheme=SERIES),
                        legend=alt.Legend(orient="bottom", labelLimit=400, columns=1)),
        tooltip=["release_id", alt.Tooltip("fpr:Q", format=".3f"), alt.Tooltip("tpr:Q", format=".3f")],
    )
    return alt.layer(diagonal, lines, title=title).properties(height=300, width=300)


def dcr(frame: pd.DataFrame, *, title: str) -> alt.Chart:
    """Distribution of distances to the closest training vs holdout record of one release."""
    return (
        alt.Chart(frame, title=title)
        .mark_bar(opacity=0.6, binSpacing=0)
        .encode(
            x=alt.X("low:Q", bin="binned", title="distance to closest record"),
            x2="high:Q",
            y=alt.Y("share:Q", stack=None, title="share of synthetic records"),
            color=alt.Color("to:N", title="closest", scale=alt.Scale(domain=["train", "holdout"], range=[SYNTHETIC, REAL])),
            tooltip=["to", alt.Tooltip("low:Q", format=".3f"), alt.Tooltip("high:Q", format=".3f"),
                     alt.Tooltip("share:Q", format=".3f")],
        )
        .properties(height=240)
    )


def risks(frame: pd.DataFrame) -> alt.LayerChart:
    """Anonymeter-style residual risks with their CIs, one row per risk, one mark per release."""
    base = alt.Chart(frame).encode(
        y=alt.Y("risk:N", title=None),
        yOffset=alt.YOffset("release_id:N"),
        color=alt.Color("release_id:N", title=None, scale=alt.Scale(scheme=SERIES),
                        legend=alt.Legend(orient="bottom", labelLimit=400, columns=1)),
    )
    bars = base.mark_rule(strokeWidth=2).encode(x=alt.X("ci_low:Q", title="residual risk (0 = none)",
                                                        scale=alt.Scale(domain=[0, 1])), x2="ci_high:Q")
    points = base.mark_point(filled=True, size=70).encode(
        x="value:Q",
        tooltip=["release_id", "risk", alt.Tooltip("value:Q", format=".3f"), alt.Tooltip("ci_low:Q", format=".3f"),
                 alt.Tooltip("ci_high:Q", format=".3f"), alt.Tooltip("attack_rate:Q", format=".3f"),
                 alt.Tooltip("baseline_rate:Q", format=".3f"), alt.Tooltip("control_rate:Q", format=".3f")],
    )
    return alt.layer(bars, points).properties(height=alt.Step(16))
