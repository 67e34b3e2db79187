"""The image benchmark end to end at a tiny budget: rows per seed merged under a lock, TCM's budget split,
the summary over seeds (mean ± sd, ratios, bars), and a file of another budget refused."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cmtutor.benchmarks import image_quality
from cmtutor.benchmarks.report import images_section


def test_two_seeds_merge_into_one_file_and_summarise(tmp_path: Path) -> None:
    out = tmp_path / "images.json"
    args = ["--data", "digits", "--steps", "4", "--methods", "diffusion", "ict", "tcm", "--out", str(out)]
    assert image_quality.main([*args, "--seeds", "0"]) == 0
    assert image_quality.main([*args, "--seeds", "1"]) == 0  # a second process: merged, not overwritten
    res = json.loads(out.read_text())
    assert sorted(res["seeds"]) == ["0", "1"] and sorted(res["seeds"]["1"]) == ["diffusion", "ict", "tcm"]
    tcm = res["seeds"]["0"]["tcm"]
    assert tcm["steps"] == 2 and tcm["stage1"]["steps"] == 2 and tcm["teacher"] == "ict"  # 2 + 2 = iCT's 4
    assert image_quality.stored_samples(res, "ict", 2).shape == (32, 8, 8, 1)
    assert "samples" not in res["seeds"]["1"]["ict"]  # samples are stored for the first seed only
    rows = {r["method"]: r for r in image_quality.summary(res)}
    assert rows["tcm"]["steps"] == 4 and rows["ict"]["seeds"] == 2
    fd = [res["seeds"][s]["ict"]["fd_1step"] for s in ("0", "1")]
    assert rows["ict"]["fd_a"][0] == pytest.approx(np.mean(fd)) and rows["ict"]["fd_a"][1] > 0
    ratios = [res["seeds"][s]["ict"]["fd_1step"] / res["seeds"][s]["diffusion"]["fd_40step"] for s in ("0", "1")]
    assert rows["ict"]["ratio"][0] == pytest.approx(np.mean(ratios))
    assert rows["ict"]["bar_met"] == (np.mean(ratios) <= 1.5)
    assert rows["tcm"]["bar"].startswith("≤ its stage 1 (iCT, 2 steps: ")
    page = images_section(res)
    assert "| ict | 2 | 4 |" in page and " ± " in page and "| CPU |" not in page  # one CPU, the same seeds
    # a table completed over sessions: a method measured on fewer seeds, a row on another CPU, each said per row
    del res["seeds"]["1"]["tcm"]
    for s in ("0", "1"):
        for e in res["seeds"][s].values():
            e["measured"]["machine"]["cpu"] = "Intel(R) Xeon(R) Processor"
    res["seeds"]["1"]["ict"]["measured"]["machine"]["cpu"] = "AMD EPYC Processor"
    page = images_section(res)
    assert "| ict | 0, 1 | AMD EPYC, Intel Xeon | 4 |" in page and "| tcm | 0 | Intel Xeon | 4 |" in page
    with pytest.raises(SystemExit, match="not comparable"):
        image_quality.main([*args[:3], "8", *args[4:], "--seeds", "2"])


def test_ablations_sit_beside_the_defaults_they_replaced(tmp_path: Path) -> None:
    out = tmp_path / "images.json"
    args = ["--data", "digits", "--steps", "2", "--seeds", "0", "--out", str(out)]
    image_quality.main([*args, "--methods", "diffusion", "cd", "ct", "ict", "gc", "tcm"])
    image_quality.main([*args, "--ablations"])
    image_quality.main([*args, "--diagnoses"])
    res = json.loads(out.read_text())
    diag = res["diagnoses"]["0"]  # a method with another's switch, kept apart from the defaults' ablations
    assert set(diag) == set(image_quality.DIAGNOSES) and not set(diag) & set(res["ablations"]["0"])
    assert diag["ct with iCT's lognormal pairs and 1/Δσ"]["changes"]["hp"] == {"pairs": "lognormal",
                                                                              "weighting": "inv_delta"}
    only = tmp_path / "only.json"  # --variants trains the variants named and no other
    image_quality.main([*args[:-2], "--out", str(only), "--diagnoses", "--variants", "ct with iCT's pseudo-Huber"])
    assert list(json.loads(only.read_text())["diagnoses"]["0"]) == ["ct with iCT's pseudo-Huber"]
    with pytest.raises(SystemExit):
        image_quality.main([*args, "--diagnoses", "--variants", "no such variant"])
    abl = res["ablations"]["0"]
    assert set(abl) == set(image_quality.ABLATIONS)
    assert abl["tcm, stage 2 at stage 1's rate"]["changes"]["lr"] == 2e-3  # the small images' iCT rate
    old_cd = abl["cd, uniform weights, at its teacher's rate"]["changes"]
    assert old_cd["lr"] == 2e-3 and old_cd["hp"] == {"weighting": "uniform"}  # the digits teacher's, 2.5x CD's default
    assert abl["cd, uniform weights (the papers')"]["changes"] == {"hp": {"weighting": "uniform"}}
    assert abl["ct, θ⁻ rate as written"]["changes"]["hp"] == {"target_horizon": 0}
    rows = {r["ablation"]: r for r in image_quality.ablation_summary(res)}
    assert rows["cd, pseudo-Huber, uniform weights"]["default_fd_1step"][0] == res["seeds"]["0"]["cd"]["fd_1step"]
    assert "replaced" in images_section(res)


def test_a_learning_curve_ends_at_the_rows_own_distance(tmp_path: Path) -> None:
    out = tmp_path / "images.json"
    image_quality.main(["--data", "digits", "--steps", "4", "--seeds", "0", "--methods", "diffusion", "cd",
                        "--curve-every", "2", "--out", str(out)])
    rows = json.loads(out.read_text())["seeds"]["0"]
    teacher, cd = rows["diffusion"], rows["cd"]
    assert [p["step"] for p in teacher["curve"]] == [2, 4] == [p["step"] for p in cd["curve"]]
    assert set(teacher["curve"][0]) == {"step", "fd_40step"} and set(cd["curve"][0]) == {"step", "fd_1step", "fd_2step"}
    # the last point is the run the row evaluates: the same samples, the same distance
    assert teacher["curve"][-1]["fd_40step"] == teacher["fd_40step"]
    assert cd["curve"][-1]["fd_1step"] == cd["fd_1step"] and cd["curve"][-1]["fd_2step"] == cd["fd_2step"]
    assert cd["curve"][0]["fd_1step"] != cd["fd_1step"]  # the points are measured, not copied
    page = images_section(json.loads(out.read_text()))
    ratio = cd["fd_1step"] / teacher["fd_40step"]
    assert "along each run, measured every 2 steps" in page and "| cd | 0 | 1 |" in page and f"| {ratio:.2f} |" in page
    # an ablation's curve sits under the methods', named by its label
    image_quality.main(["--data", "digits", "--steps", "4", "--seeds", "0", "--ablations", "--variants",
                        "cd, uniform weights (the papers')", "--curve-every", "2", "--out", str(out)])
    res = json.loads(out.read_text())
    uniform = res["ablations"]["0"]["cd, uniform weights (the papers')"]
    assert uniform["curve"][-1]["fd_1step"] == uniform["fd_1step"] != cd["fd_1step"]  # another weighting, another run
    page = images_section(res)
    assert page.index("| cd | 0 | 1 |") < page.index("| cd, uniform weights (the papers') | 0 | 1 |")


def test_a_second_table_of_a_set_loads_by_its_budget() -> None:
    # notebook 07 reads the photos at 5000 steps beside the default 1000-step table
    assert image_quality.load_results("photos", steps=5000)["budget"]["steps"] == 5000
    assert image_quality.load_results("photos")["budget"]["steps"] == 1000
    assert image_quality.load_results("photos", steps=123) is None
