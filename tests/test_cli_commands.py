"""The command line's commands and their output: --version, help with defaults and examples,
configs list|show|copy|path, --config NAME, --print-config, a cheap import."""

from __future__ import annotations

import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest
import yaml

from constrained_unlearn.cli.main import build_parser, main
from constrained_unlearn.configs import available_configs, bundled_config_path

COMMANDS = ("demo", "unlearn", "eval", "muse-scal", "muse-sust", "compare", "configs")


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert (
        capsys.readouterr().out.strip() == f"constrained-unlearn {version('constrained-unlearn')}"
    )


@pytest.mark.parametrize("command", COMMANDS)
def test_help_lists_every_option_with_its_default_and_examples(command, capsys):
    with pytest.raises(SystemExit):
        main([command, "--help"])
    text = capsys.readouterr().out
    assert "examples:" in text
    examples = [line for line in text.splitlines() if line.startswith("  constrained-unlearn ")]
    assert 2 <= len(examples) <= 4
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command").choices[command]  # noqa: SLF001
    for action in sub._actions:  # noqa: SLF001
        if not action.option_strings or action.dest == "help":
            continue
        assert action.help, f"{command} {action.option_strings} has no description"
        takes_value = action.nargs != 0 and not action.required
        if takes_value and action.default is not None:
            assert f"(default: {action.default})" in " ".join(text.split()), action.dest


def test_quiet_and_verbose_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as info:
        main(["unlearn", "--quiet", "--verbose", "--print-config"])
    assert info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_configs_list_show_path_copy(capsys, tmp_path, monkeypatch):
    assert main(["configs", "list"]) == 0
    listed = capsys.readouterr().out
    for name in available_configs():
        assert name in listed
    assert "the paper's settings" in listed  # the file's first comment line describes it
    assert main(["configs", "path", "accelerate/fsdp"]) == 0
    assert Path(capsys.readouterr().out.strip()) == bundled_config_path("accelerate/fsdp")
    assert main(["configs", "show", "tofu_llama32_1b_pdu"]) == 0
    shown = capsys.readouterr().out
    assert shown == bundled_config_path("tofu_llama32_1b_pdu").read_text()
    monkeypatch.chdir(tmp_path)
    assert main(["configs", "copy", "tofu_llama32_1b_pdu"]) == 0
    copied = tmp_path / "tofu_llama32_1b_pdu.yaml"
    assert copied.read_text() == shown
    assert main(["configs", "copy", "tofu_llama32_1b_pdu"]) == 2  # no silent overwrite
    assert "already exists; pass --force" in capsys.readouterr().err
    assert main(["configs", "copy", "tofu_llama32_1b_pdu", "--force"]) == 0
    assert main(["configs", "copy", "muse_news_pdu", str(tmp_path / "sub" / "m.yaml")]) == 0
    assert (tmp_path / "sub" / "m.yaml").is_file()
    assert main(["configs", "show"]) == 2
    assert "needs a config name" in capsys.readouterr().err


def test_print_config_resolves_a_bundled_name_and_overrides(capsys):
    assert (
        main(["unlearn", "--config", "tofu_llama32_1b_pdu", "--print-config", "training.lr=3e-5"])
        == 0
    )
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["training"]["lr"] == 3e-5
    assert printed["training"]["epochs"] == 10 and printed["training"]["keep_last"] == 2
    assert printed["method"]["name"] == "pdu"
    assert printed["model"]["name_or_path"] == "open-unlearning/tofu_Llama-3.2-1B-Instruct_full"
    assert main(["unlearn", "--print-config", "--output-dir", "elsewhere"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["output"]["dir"] == "elsewhere"


def test_cli_import_pulls_in_no_heavy_dependency():
    code = (
        "import sys\n"
        "import constrained_unlearn.cli.main as m\n"
        "m.build_parser().format_help()\n"
        "heavy = ('torch', 'mlflow', 'datasets', 'matplotlib', 'scipy', 'peft', 'transformers')\n"
        "print([name for name in heavy if name in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_eval_passes_max_new_tokens_and_tokenization_only_when_given(monkeypatch, tmp_path):
    import constrained_unlearn.evaluation.tofu as tofu
    import constrained_unlearn.llm as llm
    import constrained_unlearn.recipes.data as data

    seen = []

    class Evaluator:
        def __init__(self, model, tokenizer, rows, **kwargs):
            seen.append(kwargs)

        def evaluate(self, *args, **kwargs):
            return {"model_utility": {"agg_value": 0.123456}}

    monkeypatch.setattr(tofu, "TofuEvaluator", Evaluator)
    monkeypatch.setattr(llm, "load_model_and_tokenizer", lambda *a, **k: (None, None))
    monkeypatch.setattr(data, "load_benchmark", lambda *a, **k: {})
    out = ["--output-dir", str(tmp_path / "ev")]
    assert main(["eval", "--model", "m", *out]) == 0
    assert "max_new_tokens" not in seen[-1] and "tokenization" not in seen[-1]
    argv = ["eval", "--model", "m", "--max-new-tokens", "7", "--tokenization", "joint", *out]
    assert main(argv) == 0
    assert seen[-1]["max_new_tokens"] == 7 and seen[-1]["tokenization"] == "joint"
