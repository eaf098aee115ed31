"""The README's generated blocks: what the study finds and what was measured, rendered from the
files in figures/ that the notebooks (`make reproduce`) and the benchmarks (`make bench`,
`make gpu-check`) write, so that no number in the README is typed in.

A block sits between `<!-- mvlib:NAME -->` and `<!-- /mvlib:NAME -->`; `update` rewrites every
block from the files, and tests/test_readme.py fails when the committed README lags them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pandas as pd

from mvlib.core import paths
from mvlib.study.claims import INTERACTION_FILES, is_mechanism
from mvlib.study.section5 import TESTBED_DEPENDENCE_CLAIM

README = paths.REPO / "README.md"
JOINT = "Joint ResNet"


def _csv(path: Path) -> pd.DataFrame | None:
    return pd.read_csv(path) if path.exists() else None


def _names(rows: pd.DataFrame) -> str:
    names = list(rows.recipe)
    return ", ".join(names[:-1]) + (" and " if len(names) > 1 else "") + names[-1]


def findings(figures: Path) -> str:
    """What the synthetic testbed decides (the planted cue's cost, which recipes counteract
    it, which instruments see it, Section 5's hypothesis) and what it leaves to real data."""
    parts = [t for t in (_csv(figures / f"{n}.csv") for n in INTERACTION_FILES) if t is not None]
    if not parts:
        return "_No results in figures/ yet: run `make reproduce`._"
    inter = pd.concat(parts, ignore_index=True).drop_duplicates("recipe")
    lines = []
    joint = inter[inter.recipe == JOINT]
    if len(joint):
        j = joint.iloc[0]
        lines.append(
            f"- **The planted cue costs Joint ResNet {j.interaction:+.3f} test AUC** (95% "
            f"interval [{j['interaction lo']:+.3f}, {j['interaction hi']:+.3f}]: "
            f"{j['AUC planted']:.3f} with the cue, {j['AUC control']:.3f} without; seeds "
            f"{j['seeds (planted, control)']}).")
    others = inter[inter.recipe != JOINT]
    for verdict, text in (("counteracts the planted cue", "Counteract the cue (their gain "
                           "over Joint ResNet is larger where it is planted)"),
                          ("makes it worse", "Make it worse"),
                          ("no interaction detected at this budget",
                           "No interaction detected at this budget"),
                          ("not testable at this budget", "Not testable at this budget (a "
                           "model at chance on one condition)")):
        rows = others[others.verdict == verdict]
        if len(rows):
            lines.append(f"- {text}: {_names(rows)}.")
    testbed = _csv(figures / "testbed.csv")
    if testbed is not None and len(testbed):
        found = testbed[testbed.verdict == "found"]
        kinds = list(dict.fromkeys(i.split(":")[0] for i in found.instrument))
        missed = list(dict.fromkeys(i.split(":")[0] for i in testbed.instrument
                                    if i.split(":")[0] not in kinds))
        lines.append(f"- **Instruments**: {len(found)} of {len(testbed)} readings find the "
                     f"planted cause ({', '.join(kinds) or 'none'}); not at this budget: "
                     f"{', '.join(missed) or 'none'}.")
    verdicts = _csv(figures / "verdicts.csv")
    if verdicts is not None:
        row = verdicts[verdicts.claim == TESTBED_DEPENDENCE_CLAIM]
        if len(row):
            r = row.iloc[0]
            lines.append(f"- **Section 5's hypothesis on the testbed** (Joint ResNet's output "
                         f"follows the planted MLO cue): {r.verdict}, planted - control "
                         f"{r['diff']:+.3f} [{r.lo:+.3f}, {r.hi:+.3f}] in the cue test's logit.")
        paper_claims = verdicts[~verdicts.claim.map(is_mechanism)]
        kinds = paper_claims.verdict.map(lambda v: "a direction" if v.endswith(
            "on synthetic data") else v.split(":")[0])
        counts = ", ".join(f"{n} {k}" for k, n in kinds.value_counts().items())
        lines.append(f"- **The paper's claims** ({len(paper_claims)} in notebook 07's "
                     "verdicts): on synthetic data a comparison "
                     f"of the paper's tables is the direction it took, not a verdict on the "
                     f"paper's NYU numbers ({counts}). Real mammograms decide them: see *Your "
                     "own data*.")
    return "\n".join(lines)


def _timing(r: dict) -> str:
    m = r["machine"]
    each = ", ".join(f"{name[:2]} {minutes:.1f}" for name, minutes in r["minutes"].items())
    trained, total = r.get("runs_trained"), r.get("runs_in_store")
    runs = ("" if trained is None else ", every run reused from the run store" if trained == 0
            else f", training {trained} runs" + (f" ({total - trained} were in the store)"
                                                 if total > trained else ""))
    note = f" ({r['note']})" if r.get("note") else ""
    return (f"**{r['total_minutes']:.1f} min**{runs} ({r['profile']} profile, {r['dataset']} "
            f"data, {r['date']}, {m['cores']} cores: {m['cpu']}, torch {m['torch']}){note}; "
            f"minutes per notebook: {each}")


def reproduce(figures: Path) -> str:
    """How long `make reproduce` took from a fresh clone (figures/reproduce_fresh.json: the
    last one that trained every run) and the last time (figures/reproduce.json)."""
    records = {name: json.loads((figures / name).read_text())
               for name in ("reproduce_fresh.json", "reproduce.json") if (figures / name).exists()}
    if not records:
        return "_Not yet timed on this machine: `make reproduce` writes figures/reproduce.json._"
    lines = []
    if "reproduce_fresh.json" in records:
        lines.append("`make reproduce` with every run trained (a fresh clone; the install "
                     f"adds a few minutes): {_timing(records['reproduce_fresh.json'])}.")
    last = records.get("reproduce.json")
    if last is not None and last != records.get("reproduce_fresh.json"):
        lines.append(f"The last `make reproduce`: {_timing(last)}.")
    return "\n\n".join(lines)


def bench(figures: Path) -> str:
    """The last `make bench`'s lines (figures/bench.json)."""
    path = figures / "bench.json"
    if not path.exists():
        return "_`make bench` has not written figures/bench.json yet._"
    r = json.loads(path.read_text())
    m = r["machine"]
    return "\n".join([f"`make bench` on {r['date']}, {m['cores']} cores ({m['cpu']}, torch "
                      f"{m['torch']}):", ""] + [f"- {line.strip()}" for line in r["lines"]])


def gpu(figures: Path) -> str:
    """The recorded `make gpu-check` runs (figures/gpu_check_*.json), the first run of each."""
    lines = []
    for path in sorted(figures.glob("gpu_check_*.json")):
        r = json.loads(path.read_text())
        run = r.get("run1", r)
        t, tta, dp = run["training"], run["tta"], run["data_path"]
        loader = ", ".join(f"{w}: {v:.1f}" for w, v in dp["loader_breasts_s"].items())
        agree = run["agreement"]
        lines += [
            f"`make gpu-check` on {r['machine']}, {r['date']} (`{path.name}`):", "",
            f"- Joint ResNet training at the paper's size, batch {t['batch']}: "
            f"{t['bf16']['steps_s']:.1f} steps/s in bf16 autocast "
            f"({t['bf16']['share_of_bf16_peak']:.1%} of the bf16 dense peak), "
            f"{t['fp32']['steps_s']:.1f} in fp32.",
            f"- Fed from the zarr store by {_feeders(dp)}: "
            f"{dp['train_from_loader_steps_s']:.1f} steps/s against "
            f"{dp['train_on_device_steps_s']:.1f} on batches already on the GPU; loader alone, "
            f"breasts/s by {'threads' if 'loader_threads' in dp else 'workers'}: {loader}.",
            f"- Test-time augmentation ({tta['windows']} windows): {tta['breasts_s']:.0f} "
            f"breasts/s, the NYU test set ({tta['test_breasts']:,} breasts) in "
            f"{tta['test_set_minutes']:.1f} min; the `paper` profile's sweep about "
            f"{run['paper_sweep_gpu_hours']:,.0f} GPU-hours at the bf16 step rate.",
            _agreement(agree), _sharing(run), ""]
    return "\n".join(lines).strip() or "_No `make gpu-check` record in figures/ yet._"


def _feeders(dp: dict) -> str:
    """Who fed training in a record: the loader's threads, or (records before them) torch
    DataLoader worker processes."""
    if "loader_threads" in dp:
        return f"{dp['loader_threads']} loader threads"
    return f"{dp['loader_workers']} DataLoader worker processes"


def _sharing(run: dict) -> str:
    """Several runs per GPU and the step's variants, or that the record predates them."""
    shared, variants = run.get("shared_gpu"), run.get("step_variants")
    if not shared or "by_k" not in shared:
        return ("- Several runs per GPU and the step's variants (channels_last, "
                "cudnn.benchmark, torch.compile): not measured in this record.")
    by_k = ", ".join(f"{k}: {r['breasts_s']:.1f}" if "error" not in r else f"{k}: failed"
                     for k, r in shared["by_k"].items())
    hours = shared.get("paper_sweep_gpu_hours_at_best_k")
    line = (f"- Runs sharing one GPU, breasts/s summed by runs: {by_k}; best "
            f"{shared.get('best_k')}" + (f", the `paper` sweep about {hours:,.0f} GPU-hours"
                                         if hours else "") + ".")
    if variants:
        line += " Step variants against the default: " + ", ".join(
            f"{k} {v:.2f}x" if isinstance(v, float) else f"{k} failed"
            for k, v in variants.items() if k != "default_steps_s") + "."
    return line


def _agreement(agree: dict) -> str:
    """The agreement line of a gpu-check record: the step-and-checkpoint check against the
    CPU in fp64, or (records before it) the smoke sweep's AUC gaps, which could not fail."""
    if "max_val_auc_gap" in agree:
        return (f"- Agreement (the earlier check, AUCs of a smoke sweep, which cannot tell a "
                f"broken path from a correct one): largest validation and test AUC gaps "
                f"{agree['max_val_auc_gap']:.3f} and {agree['max_test_auc_gap']:.3f}.")
    parts = [f"{name}: logits {r['step']['logits']:.1e}, gradients {r['step']['grads']:.1e}, "
             f"test AUC change {r['checkpoint']['auc_change']:.4f} "
             f"({'within' if r['step']['within'] and r['checkpoint']['within'] else 'NOT within'})"
             for name, r in agree.items() if isinstance(r, dict) and "step" in r]
    line = ("- Agreement with the CPU in fp64 at a trained checkpoint (relative errors): "
            + "; ".join(parts) + ".")
    if "uint16_conversion_exact" in agree:
        line += (" A uint16 image converted on the device: "
                 + ("bit for bit the CPU's." if agree["uint16_conversion_exact"]
                    else "NOT the CPU's values."))
    return line


BLOCKS = {"findings": findings, "reproduce": reproduce, "bench": bench, "gpu": gpu}


def render(text: str, figures: Path) -> str:
    """`text` with every generated block rewritten from `figures`."""
    for name, make in BLOCKS.items():
        pattern = re.compile(rf"(<!-- mvlib:{name} -->\n)(?:.*?\n)?(<!-- /mvlib:{name} -->)", re.S)
        text = pattern.sub(lambda m, make=make: f"{m.group(1)}{make(figures)}\n{m.group(2)}",
                           text)
    return text


def update(readme: Path = README, figures: Path | None = None) -> bool:
    """Rewrite the README's blocks from the figures folder; True when anything changed."""
    old = readme.read_text()
    new = render(old, figures or paths.figures("laptop"))
    if new != old:
        readme.write_text(new)
    return new != old
