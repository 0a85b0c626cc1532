"""Reports as text: the one-screen before → after summary a training stage prints at the end, and the pipeline's
report (pipeline_report.md, also quoted in report.html)."""

from __future__ import annotations

from pathlib import Path

# (label, PlanningReport attribute, format) of the rows every before/after summary shows.
ROWS = (
    ("plans that parse (sampled)", "parse_rate", "{:.1%}"),
    ("plans that parse (greedy)", "greedy_parse_rate", "{:.1%}"),
    ("first step: right action", "first_step_action", "{:.1%}"),
    ("first step: exact", "first_step_exact", "{:.1%}"),
    ("first step: grounded", "first_step_grounded", "{:.1%}"),
    ("stage-1 reward (sampled)", "reward", "{:+.3f}"),
    ("stage-1 reward (greedy)", "greedy_reward", "{:+.3f}"),
)


def summary_table(title: str, before, after, paths: dict[str, Path], seconds: float) -> str:
    """Before → after for every measure both reports have, then where things are."""
    lines = ["", f"== {title}: done in {seconds / 60:.1f} min " + "=" * max(0, 60 - len(title)),
             f"  {'held-out measure':<30}{'before':>10}{'after':>10}"]
    for label, attr, fmt in ROWS:
        old, new = getattr(before, attr), getattr(after, attr)
        if old is None or new is None:
            continue
        mark = "  ↑" if new > old + 1e-9 else ("  ↓" if new < old - 1e-9 else "")
        lines.append(f"  {label:<30}{fmt.format(old):>10}{fmt.format(new):>10}{mark}")
    lines.append(f"  ({after.samples} held-out samples, {after.plans // max(after.samples, 1)} sampled plans each)")
    if after.problem_kinds:  # the commonest reasons sampled plans failed to parse, after
        lines.append(f"  why sampled plans fail (plans of {after.plans}):")
        lines += [f"  {n:>6}  {kind}" for kind, n in list(after.problem_kinds.items())[:3]]
    lines += [f"  {name + ':':<13}{path}" for name, path in paths.items()]
    return "\n".join(lines)


def pipeline_text(report: dict) -> str:
    """`make study`'s report as Markdown: per-seed rewards and grounded accuracy, then each claim's gain over seeds."""
    seeds, rows = report["seeds"], report["per_seed"]
    planact = bool(rows) and all("planact" in r for r in rows)
    stages = "SFT → stage 1 → stage 2" + (" → stage 3" if planact else "")
    lines = [f"== {report['name']}: {stages} over seeds {seeds} ({report['minutes']} min)", "",
             "| seed | SFT reward | stage-1 reward | stage-1 grounded | stage-2 grounded |"
             + (" plan-act success: SFT | stage 1 | stage 2 | stage 3 | paired gain 3 − 2 (95% CI) |" if planact
                else ""),
             "|---|---|---|---|---|" + ("---|---|---|---|---|" if planact else "")]
    for r in rows:
        grounded = (_pct(r[k]["first_step_grounded"]) for k in ("stage2_before", "stage2"))
        line = (f"| {r['seed']} | {r['sft']['reward']:+.3f} | {r['stage1']['reward']:+.3f} | "
                + " | ".join(grounded) + " |")
        if planact:
            p, gain = r["planact"], r["planact"]["paired_gain"]["trained"]
            ci = f"[{gain['ci95'][0]:+.1%}, {gain['ci95'][1]:+.1%}]" if gain["ci95"] else ""
            earlier = [_rate(v["overall"]) for v in (p.get("compared") or {}).values()][:2]
            earlier += ["n/a"] * (2 - len(earlier))
            line += (f" {' | '.join(earlier)} | {_rate(p['before']['trained']['overall'])} | "
                     f"{_rate(p['after']['trained']['overall'])} | {_signed(gain['mean'])} {ci} |")
        lines.append(line)
    lines.append("")
    if planact:
        n = rows[0]["planact"]["after"]["trained"]["overall"]["episodes"]
        lines += [f"Plan-act: {n} held-out episodes (unseen seeds of the trained families), greedy, the same before "
                  "and after stage 3.", ""]
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


def planact_summary(report: dict, paths: dict[str, Path]) -> str:
    """Stage 3's one screen: plan-act success before → after on each held-out set, with 95% intervals and the
    paired gain, the first decisions on their own, the families, then where things are."""
    lines = ["", f"== stage 3 (plan-act episodes): done in {report['seconds'] / 60:.1f} min " + "=" * 20,
             f"  {'held-out episodes':<26}{'before':>20}{'after':>20}{'paired gain (95% CI)':>28}"]
    for name, after in report["after"].items():
        before, gain = report["before"][name], report["paired_gain"][name]
        ci = f"[{gain['ci95'][0]:+.1%}, {gain['ci95'][1]:+.1%}]" if gain["ci95"] else ""
        lines.append(f"  {name.replace('_', ' ') + ' families':<26}{_rate(before['overall']):>20}"
                     f"{_rate(after['overall']):>20}{(_signed(gain['mean']) + ' ' + ci):>28}")
        first = (before["first_decision"], after["first_decision"])
        lines.append(f"  {'  first decision right':<26}{_rate(first[0], 'rate'):>20}{_rate(first[1], 'rate'):>20}")
    if report.get("compared"):  # plan-act success of the earlier stages' policies, on the same episodes
        lines.append("  trained families, earlier policies: " + ", ".join(
            f"{Path(k).name or k} {_rate(v['overall'])}" for k, v in report["compared"].items()))
    trained = report["after"]["trained"]["by_family"]
    best = sorted(trained.items(), key=lambda kv: -(kv[1]["success_rate"] or 0))
    lines.append("  after, by family: " + ", ".join(f"{k} {v['success_rate']:.0%}" for k, v in best[:8])
                 + (" ..." if len(best) > 8 else ""))
    curve = [c["success"] for c in report["success_curve"]]
    if curve:
        tenth = max(1, len(curve) // 10)
        lines.append("  training-episode success, first → last tenth of the steps: "
                     f"{sum(curve[:tenth]) / tenth:.1%} → {sum(curve[-tenth:]) / tenth:.1%}")
    n = report["after"]["trained"]["overall"]["episodes"]
    lines.append(f"  ({n} episodes per set, greedy, the same before and after; held-out families: "
                 f"{', '.join(report['held_out_families']) or 'none'})")
    lines += [f"  {name + ':':<13}{path}" for name, path in paths.items()]
    return "\n".join(lines)


def _rate(stats: dict, key: str = "success_rate") -> str:
    value, ci = stats.get(key), stats.get("ci95")
    if value is None:
        return "n/a"
    return f"{value:.1%} [{ci[0]:.0%}, {ci[1]:.0%}]" if ci else f"{value:.1%}"


def _signed(value) -> str:
    return "n/a" if value is None else f"{value:+.1%}"
