"""The pipeline's report as text (pipeline_report.md), also quoted in report.html."""

from __future__ import annotations


def pipeline_text(report: dict) -> str:
    """`make study`'s report as Markdown: per-seed rewards and grounded accuracy, then each claim's gain over seeds."""
    seeds = report["seeds"]
    lines = [f"== {report['name']}: SFT → stage 1 → stage 2 over seeds {seeds} ({report['minutes']} min)", "",
             "| seed | SFT reward | stage-1 reward | stage-1 grounded | stage-2 grounded |", "|---|---|---|---|---|"]
    for r in report["per_seed"]:
        grounded = (_pct(r[k]["first_step_grounded"]) for k in ("stage2_before", "stage2"))
        lines.append(f"| {r['seed']} | {r['sft']['reward']:+.3f} | {r['stage1']['reward']:+.3f} | "
                     + " | ".join(grounded) + " |")
    lines.append("")
    if held := report["per_seed"] and report["per_seed"][0]["stage2"].get("samples"):
        lines += [f"Held out: {held} samples, the same before and after each stage; first-step accuracy is greedy, "
                  f"one sample = {1 / held:.1%}.", ""]
    for claim in report["claims"].values():
        g = claim["gain"]
        verdict = "holds on every seed" if claim["holds_on_every_seed"] else "does NOT hold on every seed"
        lines.append(f"- {claim['says']}: {claim['before']['mean']:+.3f} → {claim['after']['mean']:+.3f}, gain "
                     f"{g['mean']:+.3f} ± {g['std']:.3f} (min {g['min']:+.3f}, max {g['max']:+.3f}) — {verdict}")
    return "\n".join(lines) + "\n"


def _pct(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"
