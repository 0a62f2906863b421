"""Evaluates COCO results files with pycocotools (the reference of focus-cocoeval's tests and
benchmark). Usage: pycocotools_eval.py CASES.json OUT.json, where CASES.json lists
{"gt": path, "dt": path, "full": bool}. OUT.json gets, per case, the twelve stats, the printed
summary lines, recall [T,K,A,M] and (when "full") precision [T,R,K,A,M], flattened in C order,
and the seconds spent in pycocotools (loading both files, evaluate, accumulate, summarize)."""
import contextlib
import importlib.metadata
import io
import json
import sys
import time

from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval


def main(cases_path, out_path):
    with open(cases_path) as f:
        cases = json.load(f)
    out = []
    for case in cases:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            start = time.perf_counter()
            gt = COCO(case["gt"])
            dt = gt.loadRes(case["dt"])
            e = COCOeval(gt, dt, "bbox")
            e.evaluate()
            e.accumulate()
            summary = io.StringIO()
            with contextlib.redirect_stdout(summary):
                e.summarize()
            seconds = time.perf_counter() - start
        out.append({
            "stats": [float(x) for x in e.stats],
            "lines": summary.getvalue().splitlines(),
            "recall": e.eval["recall"].ravel().tolist(),
            "precision": e.eval["precision"].ravel().tolist() if case.get("full") else None,
            "seconds": seconds,
            "version": importlib.metadata.version("pycocotools"),
        })
    with open(out_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
