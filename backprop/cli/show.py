"""``backprop show SPEC`` and ``backprop examples``."""

from __future__ import annotations

import argparse

from backprop.language.parse import load
from backprop.support.bundled import example_names, examples_dir

HELP = {
    "show": "print the parsed forward pass with every shape",
    "examples": "list the bundled example specs (usable by name wherever a SPEC is accepted)",
}
EXAMPLES = {
    "show": ("backprop show mlp_softmax", "backprop show net.spec"),
    "examples": ("backprop examples", "backprop examples | grep -i attention"),
}


def add_arguments(name: str, p: argparse.ArgumentParser) -> None:
    if name == "show":
        p.add_argument("spec", metavar="SPEC", help="spec file or bundled example name")


def run(args: argparse.Namespace) -> int:
    if args.command == "examples":
        for n in example_names():
            first = (examples_dir() / f"{n}.spec").read_text(encoding="utf-8").splitlines()[0]
            print(f"{n:<24} {first.lstrip('# ').strip()}")
        return 0
    print(load(args.spec).describe())
    return 0
