"""Every option of every command line of the project says what it is for (`--help` shows it)."""
import argparse
import importlib

import pytest

# Modules with a build_parser() of `python -m emotion_ros_training...` commands.
TRAINING_CLIS = [
    "emotion_ros_training.train",
    "emotion_ros_training.evaluate",
    "emotion_ros_training.report",
    "emotion_ros_training.plots",
    "emotion_ros_training.export",
    "emotion_ros_training.synth.generate",
    "emotion_ros_training.data.adapters",
    "emotion_ros_training.data.mix",
    "emotion_ros_training.calibrate",
]


def _walk(parser: argparse.ArgumentParser, prog: str):
    """(command, action) for every argument of `parser` and of its sub-commands, recursively."""
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helps = {a.dest: a.help for a in action._choices_actions}
            for name, sub in action.choices.items():
                yield f"{prog} {name}", argparse.Action([name], dest=name, help=helps.get(name))
                yield from _walk(sub, f"{prog} {name}")
            continue
        yield prog, action


def _undocumented(parser, prog):
    return [f"{cmd}: {'/'.join(a.option_strings) or a.dest}" for cmd, a in _walk(parser, prog)
            if not (a.help and a.help.strip()) and a.help != argparse.SUPPRESS]


def test_every_option_of_python_m_emotion_ros_has_help():
    from emotion_ros.app.cli import build_parser

    parser = build_parser()
    walked = list(_walk(parser, "emotion_ros"))
    assert len({cmd for cmd, _ in walked}) > 8  # the sub-commands were really walked
    assert _undocumented(parser, "emotion_ros") == []


@pytest.mark.parametrize("module", TRAINING_CLIS)
def test_every_option_of_the_training_commands_has_help(module):
    parser = importlib.import_module(module).build_parser()
    assert _undocumented(parser, module) == []


def test_the_walk_sees_an_option_without_help():
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    sub.add_parser("x", help="x").add_argument("--quiet-flag")
    assert _undocumented(parser, "p") == ["p x: --quiet-flag"]
