"""Prints the hostile-input suite's results for both implementations as a table.

    python tests/report_hostile.py OURS.xml REFERENCE.xml

The inputs are pytest JUnit XML reports of ``tests/conformance/test_hostile.py`` run
under each implementation (``./run hostile-report`` produces and passes them).
"""

import sys
import xml.etree.ElementTree as ET


def outcomes(path):
    results = {}
    for case in ET.parse(path).getroot().iter("testcase"):
        name = case.get("name").removeprefix("test_").replace("_", " ")
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            results[name] = "FAILED"
        elif skipped is not None:
            message = skipped.get("message", "")
            results[name] = (
                "fails (known bug" + message.split("known bug")[1].split(" of")[0] + ")"
                if "known bug" in message
                else "skipped"
            )
        else:
            results[name] = "survives, attacker cut off"
    return results


def main():
    ours, reference = outcomes(sys.argv[1]), outcomes(sys.argv[2])
    print("| attack | peng3dnet-rs | peng3dnet 0.1.3a0 (original) |")
    print("|---|---|---|")
    for name in ours:
        print(f"| {name} | {ours[name]} | {reference.get(name, 'not run')} |")


if __name__ == "__main__":
    main()
