"""`bert_tf.cli.main` builds the parser one way: every command module registers its own commands."""

from __future__ import annotations

import argparse
import importlib

main = importlib.import_module("bert_tf.cli.main")  # `from bert_tf.cli import main` is the function


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def test_every_command_comes_from_one_add_commands_and_runs_a_function_of_its_module():
    registered = {}
    for module in main.COMMAND_MODULES:
        name = module.__name__
        parser = argparse.ArgumentParser()
        sub = parser.add_subparsers()
        module.add_commands(
            lambda command, help_text, **kwargs: sub.add_parser(command, help=help_text, **kwargs))
        for command, sub_parser in _commands(parser).items():
            registered[command] = name
            nested = [a for a in sub_parser._actions if isinstance(a, argparse._SubParsersAction)]
            parsers = list(nested[0].choices.values()) if nested else [sub_parser]
            for each in parsers:
                func = each.get_default("func")
                assert callable(func) and func.__module__ == name, (command, func)
    full = _commands(main.build_parser())
    assert list(full) == list(registered)  # nothing registered any other way, none lost
    assert {"demo", "embed", "similarity", "plot", "info", "convert", "export", "download", "beam-embed",
            "index", "search", "senses", "neighbors"} == set(full)
    for command, parser in full.items():
        assert "example" in (parser.epilog or ""), command
