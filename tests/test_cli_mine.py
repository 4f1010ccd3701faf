"""`closedloop mine`: the full diagnosis as JSON, and the map and models on disk."""

from __future__ import annotations

import json

from closedloop.cli import main


def test_mine_json_has_the_diagnosis_keys(bundled_data, capsys):
    assert main(["mine", str(bundled_data / "running-example.xes"), "--json",
                 "--reference", str(bundled_data / "running-example.pnml"), "--sla", "200"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("events", "cases", "activities", "variants", "bottlenecks", "rework", "conformance",
                "root_causes", "duration_s"):
        assert key in report
    assert report["events"] == 42 and report["cases"] == 6
    assert {"fitness", "precision", "f1"} <= set(report["conformance"])
    assert 0 < report["conformance"]["fitness"] <= 1
    assert "running-example.pnml" in report["conformance"]["model"]


def test_mine_out_writes_map_and_models(bundled_data, tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["mine", str(bundled_data / "03_repairExample.xes.gz"), "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "wrote" in text
    for name in ("process_map.svg", "process_map.png", "process_map.html", "model.bpmn", "model.pnml"):
        assert (out / name).stat().st_size > 0, name
    assert "bpmndi:BPMNShape" in (out / "model.bpmn").read_text()
    assert "<script src=" not in (out / "process_map.html").read_text()


def test_mine_bad_file_is_one_line(tmp_path, capsys):
    bad = tmp_path / "truncated.xes"
    bad.write_text("<?xml version='1.0'?><log><trace><event>")
    assert main(["mine", str(bad)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "truncated.xes" in err[0]
