#!/usr/bin/env python3
"""Counts GoogleTest cases of the given Bazel test labels from their test.xml files.

A target that Bazel reports as FAILED TO BUILD or NO STATUS, or whose test.xml is missing, counts
as one failure, so a broken build never reads as success (an old test.xml is not trusted then). Prints
"N passed, N failed[, N skipped]" and exits 1 when anything failed.
"""
import argparse
import os
import sys
import xml.etree.ElementTree as ET


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bazel-log", required=True)
    ap.add_argument("--testlogs", required=True)
    ap.add_argument("--fuzz-log", help="tools/fuzz.sh output: each 'fuzz T: ok' line passes")
    ap.add_argument("labels", nargs="*")
    a = ap.parse_args()
    broken = set()
    bazel_failed = set()  # Bazel says FAILED/TIMEOUT (e.g. a leak report at exit after the
                          # XML was written): never counted as a pass.
    with open(a.bazel_log, errors="replace") as f:
        for line in f:
            parts = line.split()
            if len(parts) >= 2 and parts[0].startswith("//") and \
                    ("FAILED TO BUILD" in line or "NO STATUS" in line):
                broken.add(parts[0])
            elif len(parts) >= 2 and parts[0].startswith("//") and \
                    (" FAILED in " in line or " TIMEOUT in " in line):
                bazel_failed.add(parts[0])
    passed = failed = skipped = 0
    for label in a.labels:
        if label in broken:
            print(f"count_tests: {label}: did not build or run", file=sys.stderr)
            failed += 1
            continue
        pkg, _, name = label.lstrip("/").partition(":")
        xml = os.path.join(a.testlogs, pkg, name, "test.xml")
        if not os.path.exists(xml):
            print(f"count_tests: {label}: no test.xml", file=sys.stderr)
            failed += 1
            continue
        try:
            root = ET.parse(xml).getroot()
        except ET.ParseError as e:
            print(f"count_tests: {label}: bad test.xml: {e}", file=sys.stderr)
            failed += 1
            continue
        cases = list(root.iter("testcase"))
        if label in bazel_failed and not any(
                c.find("failure") is not None or c.find("error") is not None for c in cases):
            print(f"count_tests: {label}: bazel reports FAILED though every case passed "
                  "(see its test.log: sanitizer report at exit?)", file=sys.stderr)
            failed += 1
        if not cases:
            # No per-case results (not a gtest binary, or it died): judge the target by its
            # <testsuite failures/errors> attributes.
            bad = any(int(s.get("failures", "0")) + int(s.get("errors", "0")) > 0
                      for s in root.iter("testsuite"))
            failed += 1 if bad else 0
            passed += 0 if bad else 1
            continue
        for c in cases:
            if c.find("failure") is not None or c.find("error") is not None:
                failed += 1
                print(f"count_tests: FAILED {label} {c.get('classname')}.{c.get('name')}",
                      file=sys.stderr)
            elif c.find("skipped") is not None or c.get("result") == "skipped" or \
                    c.get("status") == "notrun":
                skipped += 1
            else:
                passed += 1
    if a.fuzz_log:
        for l in open(a.fuzz_log):
            if not l.startswith("fuzz "):
                continue
            if ": ok" in l:
                passed += 1
            else:
                failed += 1
                print(f"count_tests: {l.strip()}", file=sys.stderr)
    line = f"{passed} passed, {failed} failed"
    if skipped:
        line += f", {skipped} skipped"
    print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
