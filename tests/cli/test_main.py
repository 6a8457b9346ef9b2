"""`bert_tf.cli.main` builds the parser one way (every command module registers its own commands), and
tells the user's errors (one line, exit 1) from bugs (a traceback)."""

from __future__ import annotations

import argparse
import importlib
import subprocess
import sys

import pytest

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
            "index", "search", "senses", "neighbors", "shift"} == set(full)
    for command, parser in full.items():
        assert "example" in (parser.epilog or ""), command


# ---------------------------------------------------------------------- user errors and bugs

def _one_line_error(capsys, argv, message):
    """`bert-tf ARGV` exits 1 with one line `bert-tf: error: ...MESSAGE...` and no traceback."""
    assert main.main(argv) == 1
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("bert-tf: error:")]
    assert len(lines) == 1 and message in lines[0], err
    assert "Traceback" not in err


@pytest.mark.parametrize("argv, message", [
    (["embed", "--layers=-9", "a mouse"], "layers must be integers from -3 to 2 for this 2-layer model"),
    (["embed", "--layers=-1,-1", "a mouse"], "layers names the same layer twice"),
    (["embed", "--max-seq-length", "4", "a mouse"], "max_seq_length must be an integer from 8 to 64"),
    (["embed", "--dim", "0", "a mouse"], "dim must be a positive integer"),
    (["similarity", "--words", "zebra", "a mouse"], "the word 'zebra' is in none of the"),
])
def test_a_bad_option_value_is_one_line(capsys, make_checkpoint, argv, message):
    directory, _ = make_checkpoint()
    _one_line_error(capsys, [*argv, "--checkpoint", str(directory)], message)


def test_blank_input_is_one_line(capsys, make_checkpoint, tmp_path):
    directory, _ = make_checkpoint()
    blank = tmp_path / "blank.txt"
    blank.write_text("\n   \n", encoding="utf-8")
    _one_line_error(capsys, ["similarity", "--words", "mouse", "--input", str(blank), "--checkpoint",
                             str(directory)], "no sentences: the input has no non-empty line")


def test_a_bad_checkpoint_folder_is_one_line(capsys, make_checkpoint):
    directory, _ = make_checkpoint()
    (directory / "bert_config.json").write_text('{"hidden_size": ', encoding="utf-8")
    _one_line_error(capsys, ["info", str(directory)], "not valid JSON")
    (directory / "bert_config.json").write_text('{"hidden_size": 32}', encoding="utf-8")
    _one_line_error(capsys, ["info", str(directory)], "bert_config.json")


@pytest.mark.parametrize("error", [ValueError("a bug in bert_tf"), TypeError("a bug in bert_tf"),
                                   KeyError("a bug in bert_tf")])
def test_a_bug_keeps_its_traceback(monkeypatch, capsys, make_checkpoint, error):
    """A plain ValueError/TypeError is not a user error: it propagates (the interpreter prints it) and
    is never turned into the one-line `bert-tf: error:` message."""
    def broken(args):
        raise error

    monkeypatch.setattr(main.commands, "info", broken)
    directory, _ = make_checkpoint()
    with pytest.raises(type(error), match="a bug in bert_tf"):
        main.main(["info", str(directory)])
    assert "bert-tf: error:" not in capsys.readouterr().err


@pytest.mark.slow
def test_a_bug_shows_a_traceback_and_a_non_zero_exit_in_a_real_process(tmp_path):
    code = ("import sys\n"
            "import bert_tf.cli.commands as commands\n"
            "def broken(args):\n"
            "    raise ValueError('a bug in bert_tf')\n"
            "commands.info = broken\n"
            "from bert_tf.cli.main import main\n"
            "sys.exit(main(['info', 'anything']))\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 1
    assert "Traceback" in proc.stderr and "ValueError: a bug in bert_tf" in proc.stderr
    assert "bert-tf: error:" not in proc.stderr


def test_user_errors_are_user_error_and_four_os_errors_only():
    from bert_tf.errors import InvalidType, InvalidValue, UserError

    for error in (UserError("x"), InvalidValue("x"), InvalidType("x"), FileNotFoundError("x"),
                  FileExistsError("x"), IsADirectoryError("x"), PermissionError("x")):
        assert main.is_user_error(error)
    for error in (ValueError("x"), TypeError("x"), OSError("x"), KeyError("x"), RuntimeError("x")):
        assert not main.is_user_error(error)


def test_the_index_checks_of_a_query_are_user_errors_and_a_plain_value_error_is_not():
    from bert_tf.errors import InvalidValue
    from bert_tf.index.query import check_k

    with pytest.raises(InvalidValue) as raised_in_index:
        check_k(0)
    assert main.is_user_error(raised_in_index.value)

    def here():
        check_k(1)
        raise ValueError("a bug after calling the index")

    with pytest.raises(ValueError) as raised_here:
        here()
    assert not main.is_user_error(raised_here.value)
