"""The catalogue of bad inputs: what a user can get wrong, the error they see, and the fix.

`tests/test_bad_inputs.py` runs every entry (the error and its message are asserted, the exit
status the command line gives it, that the entry's scratch folder stays empty — nothing written,
nothing lost — and that no MLflow run is left RUNNING); `docs/troubleshooting.md` is rendered
from the same list:

    python tests/bad_input_catalogue.py > docs/troubleshooting.md
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent


@dataclass(frozen=True)
class BadInput:
    area: str
    what: str
    call: Callable[[Path], object]
    error: type[BaseException]
    message: str  # a regular expression the message must match
    fix: str
    status: int = 2  # the command line's exit status: 2 input, 1 runtime, 130 interrupted


def llm_fixtures():
    """The tiny tokenizer and model builders of tests/llm/conftest.py (usable outside tests/llm)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_llm_fixtures", HERE / "llm" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tok():
    return llm_fixtures().build_tokenizer()


def _config(*overrides):
    from constrained_unlearn.recipes.config import load_config

    return lambda tmp: load_config(None, [f"output.dir={tmp / 'out'}", *overrides])


def _engine(**kwargs):
    def run(tmp):
        import torch
        from toy_problems import classifier_data, classifier_terms, linear_model

        from constrained_unlearn.engine import EngineConfig, PairedData, UnlearningEngine
        from constrained_unlearn.problem import ConstraintSpec

        forget, retain = classifier_data()
        args = {
            "constraints": [ConstraintSpec("retain", bound=1.0)],
            "config": EngineConfig(epochs=1, progress=False, cpu=True),
            "optimizer": lambda p: torch.optim.SGD(p, lr=0.1),
            **kwargs,
        }
        terms = args.pop("terms", classifier_terms)
        engine = UnlearningEngine(
            linear_model(), terms, PairedData(forget, retain, batch_size=8), **args
        )
        return engine.fit()

    return run


def _under_deepspeed(accumulation: int = 1, **kwargs):
    # the check reads only accelerator.distributed_type; DeepSpeed itself is not needed
    def run(tmp):
        from unittest import mock

        from accelerate import Accelerator
        from accelerate.utils import DistributedType

        from constrained_unlearn.engine import EngineConfig

        config = EngineConfig(
            epochs=1, progress=False, cpu=True, gradient_accumulation_steps=accumulation
        )
        inner = _engine(config=config, **kwargs)

        deepspeed = mock.PropertyMock(return_value=DistributedType.DEEPSPEED)
        with mock.patch.object(Accelerator, "distributed_type", new_callable=lambda: deepspeed):
            return inner(tmp)

    return run


def _second_precision(tmp):
    # a first engine fixes this process's accelerate state; a second asks for another precision
    from constrained_unlearn.engine import EngineConfig

    _engine(config=EngineConfig(epochs=1, progress=False, cpu=True, max_steps=1))(tmp)
    bf16 = EngineConfig(epochs=1, progress=False, cpu=True, mixed_precision="bf16")
    return _engine(config=bf16)(tmp)


def _terms_wrong_names(model, forget, retain):
    from toy_problems import classifier_terms

    from constrained_unlearn.engine import Terms

    base = classifier_terms(model, forget, retain)
    return Terms(base.objective, {"retian": base.constraints["retain"]})


def _terms_vector(model, forget, retain):
    from toy_problems import classifier_terms

    from constrained_unlearn.engine import Terms

    base = classifier_terms(model, forget, retain)
    return Terms(model(forget[0]).mean(dim=1), base.constraints)


def _empty_set(which):
    def run(tmp):
        import torch

        from constrained_unlearn.engine import PairedData

        full = torch.utils.data.TensorDataset(torch.zeros(4, 2))
        empty = torch.utils.data.TensorDataset(torch.zeros(0, 2))
        return PairedData(empty, full) if which == "forget" else PairedData(full, empty)

    return run


def _spec(**kwargs):
    def run(tmp):
        from constrained_unlearn.problem import ConstraintSpec

        return ConstraintSpec(**kwargs)

    return run


def _chunked_on_cohere(tmp):
    """The chunked loss on an architecture that rescales its logits after the head."""
    import torch
    import transformers as T

    from constrained_unlearn.llm import CausalLMTerms, pad_collate

    torch.manual_seed(0)
    config = T.CohereConfig(
        vocab_size=50, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=2, logit_scale=0.25,
        pad_token_id=0, bos_token_id=1, eos_token_id=2,
    )  # fmt: skip
    model = T.AutoModelForCausalLM.from_config(config)
    batch = pad_collate([{"input_ids": [5, 6, 7, 8], "labels": [-100, -100, 7, 8]}], 0)
    return CausalLMTerms(forget_loss="margin", chunk_size=2)(model, batch, batch)


def _self_reference_log(tmp):
    """A retain log made by the very weights then evaluated against it."""
    import sys
    import tempfile

    sys.path.insert(0, str(HERE / "evaluation"))
    from test_evaluator_fixtures import build_llama, build_tokenizer, tofu_data

    from constrained_unlearn.evaluation.tofu import TofuEvaluator, write_retain_log

    tokenizer = build_tokenizer()
    model = build_llama(tokenizer)
    logs = Path(tempfile.mkdtemp(prefix="selfref-"))  # outside the entry's scratch folder
    fast = {"max_new_tokens": 4, "batch_size": 8}
    write_retain_log(model, tokenizer, tofu_data(), logs, **fast)
    evaluator = TofuEvaluator(
        model, tokenizer, tofu_data(), retain_logs=logs, metrics=["forget_quality"], **fast
    )
    return evaluator.evaluate()


def _solver(name, **kwargs):
    def run(tmp):
        from constrained_unlearn.solvers import make_solver

        return make_solver(name, **kwargs)

    return run


def _problem_duplicate(tmp):
    from constrained_unlearn.problem import ConstraintSpec, UnlearningProblem

    return UnlearningProblem(
        [ConstraintSpec("retain", bound=1.0), ConstraintSpec("retain", bound=2.0)]
    )


def _qa(rows, **kwargs):
    def run(tmp):
        from constrained_unlearn.llm import QADataset

        return QADataset(rows, _tok(), **kwargs)

    return run


def _run_with_splits(tmp):
    from constrained_unlearn.recipes.config import load_config
    from constrained_unlearn.recipes.llm_unlearn import run_unlearning

    tok = _tok()
    cfg = load_config(
        None, [f"output.dir={tmp / 'out'}", "data.forget_split=forget05", "tracking.enabled=false"]
    )
    rows = {
        "forget10": [{"question": "q", "answer": "a"}],
        "retain90": [{"question": "q", "answer": "a"}],
    }
    return run_unlearning(cfg, rows, model=llm_fixtures().build_model("llama", tok), tokenizer=tok)


def _load_model(name):
    def run(tmp):
        from constrained_unlearn.llm import load_model_and_tokenizer

        return load_model_and_tokenizer(name)

    return run


def _yaml_file(text):
    def run(tmp):
        from constrained_unlearn.recipes.config import load_config

        path = tmp.parent / "run.yaml"  # outside the scratch folder, which must stay empty
        path.write_text(text)
        return load_config(path)

    return run


def _preflight(*overrides):
    def run(tmp):
        from constrained_unlearn.recipes.config import load_config
        from constrained_unlearn.recipes.llm_unlearn import preflight

        return preflight(load_config(None, [f"output.dir={tmp / 'out'}", *overrides]))

    return run


def _free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _output_under_a_file(tmp):
    from constrained_unlearn.recipes.llm_unlearn import check_output_dir

    (tmp.parent / "a_file").write_text("x")
    return check_output_dir(tmp.parent / "a_file" / "out")


def _truncated_jsonl(tmp):
    from constrained_unlearn.benchmarks.tofu import load_tofu

    folder = tmp.parent / "tofu"
    folder.mkdir()
    (folder / "forget10.jsonl").write_text(
        '{"question": "q", "answer": "a"}\n{"question": "q2", "ans'
    )
    return load_tofu("forget10", folder)


def _identical_sets(tmp):
    from constrained_unlearn.recipes.config import load_config
    from constrained_unlearn.recipes.llm_unlearn import run_unlearning

    tok = _tok()
    rows = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(4)]
    cfg = load_config(None, [f"output.dir={tmp / 'out'}"])
    splits = {"forget10": rows, "retain90": list(rows)}
    return run_unlearning(
        cfg, splits, model=llm_fixtures().build_model("llama", tok), tokenizer=tok
    )


def _unreachable_hub(tmp):
    import os
    from unittest import mock

    from constrained_unlearn.llm import load_model_and_tokenizer

    env = {"HF_ENDPOINT": f"http://127.0.0.1:{_free_port()}", "HF_HUB_OFFLINE": ""}
    with mock.patch.dict(os.environ, env):
        return load_model_and_tokenizer("someorg/not-a-model")


def _vocabulary(tmp):
    from constrained_unlearn.llm.loading import check_vocabulary

    tok = _tok()
    model = llm_fixtures().build_model("llama", tok)
    rows = model.get_input_embeddings().num_embeddings
    tok.add_tokens([f"<new_{i}>" for i in range(rows - len(tok) + 1)])
    return check_vocabulary(model, tok)


def _sigterm_in_calibration(tmp):
    import os
    import signal
    from unittest import mock

    from constrained_unlearn.engine import UnlearningEngine
    from constrained_unlearn.recipes.config import load_config
    from constrained_unlearn.recipes.llm_unlearn import run_unlearning

    tok = _tok()
    cfg = load_config(
        None, [f"output.dir={tmp.parent / 'out'}", "training.epochs=1", "output.save_model=false"]
    )
    rows = {
        "forget10": [{"question": f"q{i}", "answer": f"a{i}"} for i in range(4)],
        "retain90": [{"question": f"r{i}", "answer": f"b{i}"} for i in range(4)],
    }
    original = UnlearningEngine.calibrate

    def calibrate(self, *args, **kwargs):
        values = original(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)
        return values

    with mock.patch.object(UnlearningEngine, "calibrate", calibrate):
        return run_unlearning(
            cfg, rows, model=llm_fixtures().build_model("llama", tok), tokenizer=tok
        )


def _method_option(tmp):
    from constrained_unlearn.methods import get_method

    return get_method("npo", betaa=0.1)


def _tofu(config, source):
    def run(tmp):
        from constrained_unlearn.benchmarks.tofu import load_tofu

        return load_tofu(config, source)

    return run


def _pad(tmp):
    from transformers import PreTrainedTokenizerFast

    from constrained_unlearn.llm import ensure_pad_token

    tok = _tok()
    bare = PreTrainedTokenizerFast(tokenizer_object=tok.backend_tokenizer)
    return ensure_pad_token(bare)


def _truth_ratio(tmp):
    import numpy as np

    from constrained_unlearn.evaluation.metrics import truth_ratios

    return truth_ratios(np.array([1.0, 2.0]), [np.array([1.5]), np.array([])])


def _model_utility(tmp):
    from constrained_unlearn.evaluation.metrics import model_utility

    return model_utility({"retain_Q_A_Prob": 0.5})


def _forget_quality(tmp):
    import numpy as np

    from constrained_unlearn.evaluation.metrics import forget_quality

    return forget_quality(np.array([]), np.array([0.5]))


def _privleak(tmp):
    from constrained_unlearn.evaluation.metrics import tofu_privleak

    return tofu_privleak(0.9)


CATALOGUE: list[BadInput] = [
    # -- configuration ------------------------------------------------------------------
    BadInput(
        "config",
        "a misspelt section",
        _config("trainng.lr=1e-5"),
        ValueError,
        r"unknown config key 'trainng'; did you mean 'training'\?",
        "Use the suggested key; `constrained-unlearn unlearn --help` and the Getting started page list the sections.",
    ),
    BadInput(
        "config",
        "a misspelt key inside a section",
        _config("training.lrr=1e-5"),
        ValueError,
        r"unknown config key training.'lrr'; did you mean training.'lr'\?",
        "Use the suggested key; the message lists every valid key of the section.",
    ),
    BadInput(
        "config",
        "an unknown solver",
        _config("method.solver=extragradiant"),
        ValueError,
        r"method.solver='extragradiant' is unknown \(did you mean 'extragradient'\?\)",
        "Pick one of gda, alternating-gda, extragradient, augmented-lagrangian, nupi, penalty.",
    ),
    BadInput(
        "config",
        "ε ≤ 0",
        _config("method.epsilon=0"),
        ValueError,
        r"method.epsilon must be > 0 or null",
        "Give a positive bound, or null to calibrate ε = (1 + slack)·L_retain(θ₀).",
    ),
    BadInput(
        "config",
        "a non-positive learning rate",
        _config("training.lr=0"),
        ValueError,
        r"training.lr must be a number > 0",
        "Set training.lr to a positive number (1e-5 is the TOFU default).",
    ),
    BadInput(
        "config",
        "an unknown mixed-precision mode",
        _config("training.mixed_precision=fp8"),
        ValueError,
        r"training.mixed_precision must be one of 'no', 'bf16', 'fp16', got 'fp8'",
        "Use no, bf16 or fp16.",
    ),
    BadInput(
        "config",
        "an override without '='",
        _config("training.lr"),
        ValueError,
        r"override 'training.lr' must look like section.key=value",
        "Write overrides as section.key=value, e.g. training.lr=2e-5.",
    ),
    BadInput(
        "config",
        "a retain log that does not exist",
        _config("eval.retain_logs=/nonexistent/TOFU_EVAL.json"),
        ValueError,
        r"eval.retain_logs='/nonexistent/TOFU_EVAL.json' does not exist",
        "Produce it with `constrained-unlearn eval --make-retain-log` on the retain model, or fix the path.",
    ),
    BadInput(
        "config",
        "a config file that does not exist",
        lambda tmp: __import__("constrained_unlearn.recipes.config", fromlist=["x"]).load_config(
            tmp / "missing.yaml"
        ),
        ValueError,
        r"config file '.*missing.yaml' does not exist",
        "Check the path given to --config.",
    ),
    BadInput(
        "config",
        "a boolean where a number belongs (`training.epochs: true`)",
        _config("training.epochs=true"),
        ValueError,
        r"training.epochs must be an integer, got True",
        "Write the number (training.epochs: 1); YAML's true/false are never numbers here.",
    ),
    BadInput(
        "config",
        "text where an integer belongs (`training.seed: abc`)",
        _config("training.seed=abc"),
        ValueError,
        r"training.seed must be an integer, got 'abc'",
        "Write an integer.",
    ),
    BadInput(
        "config",
        "an empty value (`output.dir:`)",
        _config("output.dir="),
        ValueError,
        r"output.dir must be a string, got null \(an empty value\)",
        "Write a value after the colon, or remove the key to keep its default.",
    ),
    BadInput(
        "config",
        "a key given twice in a YAML file",
        _yaml_file("training:\n  lr: 1.0e-5\n  epochs: 3\n  lr: 2.0e-5\n"),
        ValueError,
        r"key 'lr' appears twice in the same mapping \(lines 2 and 4\)",
        "Remove one of the two; YAML would silently keep the last.",
    ),
    BadInput(
        "config",
        "an engine setting the recipe decides (`training.checkpoint_dir`)",
        _config("training.checkpoint_dir=/tmp/ckpt"),
        ValueError,
        r"training.checkpoint_dir is set by the recipe",
        "Remove it: checkpoints go to <output.dir>/checkpoints.",
    ),
    BadInput(
        "config",
        "a misspelt tracking URI scheme (`sqllite:///x.db`)",
        _preflight("tracking.tracking_uri=sqllite:///x.db"),
        RuntimeError,
        r"unknown scheme 'sqllite' \(did you mean 'sqlite'\?\)",
        "Fix the URI (sqlite:///mlflow.db, a folder, http://HOST:PORT) or set tracking.enabled=false.",
    ),
    BadInput(
        "config",
        "an MLflow server that does not answer",
        lambda tmp: _preflight(f"tracking.tracking_uri=http://127.0.0.1:{_free_port()}/")(tmp),
        RuntimeError,
        r"the MLflow server at 'http://127.0.0.1:\d+/' does not answer",
        "Start the server, fix the URI, use a local store or turn tracking off; found before any compute.",
    ),
    BadInput(
        "config",
        "an output folder that cannot be written",
        _output_under_a_file,
        OSError,
        r"output folder '.*a_file/out' cannot be created: '.*a_file' is a file",
        "Choose a writable output.dir (or --output-dir); found before any compute.",
    ),
    # -- problem and solvers ------------------------------------------------------------
    BadInput(
        "problem",
        "ε not finite",
        _spec(name="retain", bound=math.nan),
        ValueError,
        r"epsilon \(bound\) of constraint 'retain' must be a finite number > 0",
        "Pass a positive, finite bound or bound=None to calibrate.",
    ),
    BadInput(
        "problem",
        "a constraint name that is not an identifier",
        _spec(name="retain-loss"),
        ValueError,
        r"constraint name 'retain-loss' must be a Python identifier",
        "Use letters, digits and underscores (e.g. retain_loss).",
    ),
    BadInput(
        "problem",
        "two constraints with the same name",
        _problem_duplicate,
        ValueError,
        r"constraint names must be unique",
        "Give every constraint its own name; dual state is keyed by it.",
    ),
    BadInput(
        "solver",
        "an unknown solver name",
        _solver("gda2"),
        ValueError,
        r"unknown solver 'gda2'; choose one of .*Did you mean 'gda'\?",
        "Use one of the listed names, or pass a Solver object.",
    ),
    BadInput(
        "solver",
        "a negative initial multiplier",
        _solver("gda", multiplier_init=-1.0),
        ValueError,
        r"multiplier_init must be a finite number ≥ 0",
        "λ of an inequality constraint is never negative; use λ₀ ≥ 0.",
    ),
    BadInput(
        "solver",
        "augmented Lagrangian with penalty 0",
        _solver("augmented-lagrangian", penalty=0.0),
        ValueError,
        r"penalty must be > 0 \(c = 0 makes the inequality term NaN\)",
        "Use a positive penalty c (its default dual step size is c).",
    ),
    BadInput(
        "solver",
        "no dual step for a solver whose λ moves",
        _solver("gda", dual_lr=None),
        ValueError,
        r"dual_lr must be a finite number ≥ 0 for solver 'gda', got None",
        "Give dual_lr a number (the dual step η); only the augmented Lagrangian defaults it (η = c).",
    ),
    BadInput(
        "llm",
        "chunked losses on a model that post-processes its logits (Cohere's logit_scale)",
        _chunked_on_cohere,
        ValueError,
        r"not exact for .*chunk_size=None",
        "Use training.loss_chunk_size: null (full logits); the chunked path is exact or refused.",
    ),
    BadInput(
        "evaluation",
        "a reference (retain) log made by the very weights under evaluation",
        _self_reference_log,
        ValueError,
        r"very weights under evaluation",
        "Evaluate against the retain model's log; allow_self_reference=True only to test.",
    ),
    # -- engine ----------------------------------------------------------------------------
    BadInput(
        "engine",
        "a boolean where a number is expected (`epochs=True`)",
        lambda tmp: __import__(
            "constrained_unlearn.engine", fromlist=["EngineConfig"]
        ).EngineConfig(epochs=True),
        ValueError,
        r"epochs must be a number, got the boolean True",
        "Write the number (epochs=1); booleans are never read as 0 or 1.",
    ),
    BadInput(
        "engine",
        "an empty forget set",
        _empty_set("forget"),
        ValueError,
        r"the forget set is empty",
        "Check the split name and any filtering that produced the forget set.",
    ),
    BadInput(
        "engine",
        "an empty retain set",
        _empty_set("retain"),
        ValueError,
        r"the retain set is empty",
        "Check the retain split name (forget10 pairs with retain90).",
    ),
    BadInput(
        "engine",
        "a loss that is not a scalar",
        _engine(terms=_terms_vector),
        ValueError,
        r"the forget objective must be a scalar tensor, got shape torch.Size\(\[8\]\)",
        "Reduce the loss inside the terms function (e.g. .mean()).",
    ),
    BadInput(
        "engine",
        "constraint values under the wrong names",
        _engine(terms=_terms_wrong_names),
        ValueError,
        r"terms_fn returned constraint values \['retian'\], but the problem's constraints are \['retain'\]",
        "Return one value per ConstraintSpec, under the same names.",
    ),
    BadInput(
        "engine",
        "a second engine with another mixed precision in the same process",
        _second_precision,
        ValueError,
        r"EngineConfig\(mixed_precision='bf16', cpu=True\) conflicts with the accelerate state "
        r"this process already has \(mixed_precision='no'\)",
        "Use one mixed_precision per process (or share one accelerator=); run each precision in "
        "its own process.",
    ),
    BadInput(
        "engine",
        "gradient accumulation under DeepSpeed",
        _under_deepspeed(accumulation=2),
        ValueError,
        r"gradient_accumulation_steps=2 is not supported under DeepSpeed",
        "Set gradient_accumulation_steps to 1 (raise the per-device batch or the GPU count), "
        "or use FSDP/DDP.",
    ),
    BadInput(
        "engine",
        "extragradient under DeepSpeed",
        _under_deepspeed(solver="extragradient"),
        ValueError,
        r"solver 'extragradient' extrapolates θ and restores it",
        "Use gda, alternating-gda, nupi or augmented-lagrangian, or FSDP/DDP for extragradient.",
    ),
    # -- data ------------------------------------------------------------------------------
    BadInput(
        "data",
        "a QA column that does not exist",
        _qa([{"q": "Who?", "answer": "Me."}]),
        KeyError,
        r"lacks key\(s\) \['question'\]; available keys: \['answer', 'q'\]",
        "Pass question_key= / answer_key= naming the right columns.",
    ),
    BadInput(
        "data",
        "an empty split",
        _qa([]),
        ValueError,
        r"rows is empty",
        "Check the split name; an empty split cannot be unlearned or evaluated.",
    ),
    BadInput(
        "data",
        "an answer longer than max_length",
        _qa([{"question": "q", "answer": "word " * 400}], max_length=32),
        ValueError,
        r"does not fit max_length=32 .* raise max_length or shorten the answer",
        "Raise data.max_length. Long prompts are truncated (and counted); answers never are.",
    ),
    BadInput(
        "data",
        "a split the data does not have",
        _run_with_splits,
        KeyError,
        r"split 'forget05' not found; available: \['forget10', 'retain90'\]",
        "Use one of the listed splits.",
    ),
    BadInput(
        "data",
        "an unknown TOFU config",
        _tofu("forget11", "locuslab/TOFU"),
        ValueError,
        r"unknown TOFU config 'forget11'; valid configs: \[",
        "Use one of the listed configs (forget01/05/10, retain99/95/90, …).",
    ),
    BadInput(
        "data",
        "a local TOFU folder that does not exist",
        _tofu("forget10", "/nonexistent/tofu"),
        FileNotFoundError,
        r"TOFU source '/nonexistent/tofu' is not an existing folder",
        "Pass the hub id locuslab/TOFU or a folder holding <config>.jsonl/parquet files.",
    ),
    BadInput(
        "data",
        "a truncated JSONL data file",
        _truncated_jsonl,
        ValueError,
        r"forget10.jsonl cannot be read as json .*truncated last line",
        "Fetch or copy the file again; the message names the file and the parser's reason.",
    ),
    BadInput(
        "data",
        "a hub dataset id while offline and not cached",
        _tofu("forget10", "someorg/NOT_A_DATASET"),
        FileNotFoundError,
        r"'someorg/NOT_A_DATASET' is not in the local cache, and HF_HUB_OFFLINE.*data.path=",
        "Pass a local folder with the same files (data.path=...), or download once with network access.",
    ),
    BadInput(
        "data",
        "a forget set identical to the retain set",
        _identical_sets,
        ValueError,
        r"the forget set 'forget10' is identical to the retain set 'retain90' .*allow_overlap=true",
        "Choose disjoint splits; data.allow_overlap=true runs anyway (partial overlap only warns).",
    ),
    # -- model -----------------------------------------------------------------------------
    BadInput(
        "model",
        "a model folder that does not exist",
        _load_model("/nonexistent/model"),
        FileNotFoundError,
        r"model folder '/nonexistent/model' does not exist",
        "Pass a folder written by save_pretrained, or a hub id such as org/model.",
    ),
    BadInput(
        "model",
        "a hub id while offline and not cached",
        _load_model("someorg/not-cached-model"),
        FileNotFoundError,
        r"is not in the Hugging Face cache, and HF_HUB_OFFLINE",
        "Download the model once with network access, or unset HF_HUB_OFFLINE.",
    ),
    BadInput(
        "model",
        "a tokenizer with neither pad nor EOS token",
        _pad,
        ValueError,
        r"the tokenizer has neither a pad_token nor an eos_token",
        "Add a pad token (tokenizer.add_special_tokens) and resize the embeddings.",
    ),
    BadInput(
        "model",
        "a hub id while the hub cannot be reached (HF_HUB_OFFLINE unset)",
        _unreachable_hub,
        FileNotFoundError,
        r"'someorg/not-a-model' is not a local folder .* cannot be reached .*local folder.*HF_HUB_OFFLINE",
        "Pass a local folder, download once where the hub can be reached, or set HF_HUB_OFFLINE=1; "
        "reported in seconds.",
    ),
    BadInput(
        "model",
        "a tokenizer larger than the model's input embeddings",
        _vocabulary,
        ValueError,
        r"the tokenizer has \d+ ids but the model's input embeddings have \d+ rows",
        "Use the tokenizer saved with the model, or resize the embeddings and save the model.",
    ),
    BadInput(
        "model",
        "an option the method does not have",
        _method_option,
        TypeError,
        r"method 'npo' has no option\(s\) \['betaa'\]; its options are",
        "Use one of the listed options (method.options).",
    ),
    BadInput(
        "engine",
        "SIGTERM during the calibration pass (before the first step)",
        _sigterm_in_calibration,
        KeyboardInterrupt,
        r"signal SIGTERM",
        "Nothing to fix: the MLflow run ends KILLED, as a SIGTERM later in the run does.",
        status=130,
    ),
    # -- evaluation ------------------------------------------------------------------------
    BadInput(
        "evaluation",
        "a question without perturbed answers",
        _truth_ratio,
        ValueError,
        r"perturbed_nll\[1\] is empty: question 1 has no perturbed answer",
        "Drop the question or supply its perturbed answers.",
    ),
    BadInput(
        "evaluation",
        "model utility from an incomplete set of components",
        _model_utility,
        ValueError,
        r"components must have exactly the nine keys",
        "Compute all nine retain / real-authors / world-facts numbers.",
    ),
    BadInput(
        "evaluation",
        "forget quality on an empty sample",
        _forget_quality,
        ValueError,
        r"both samples need ≥ 1 question",
        "Evaluate a non-empty forget split for both models.",
    ),
    BadInput(
        "evaluation",
        "privacy leak without the retain model's AUC",
        _privleak,
        TypeError,
        r"auc_retain",
        "Pass the retain log (its mia_min_k AUC); no silent 0.5 default.",
        status=1,  # a Python call without a required argument: a program error, not an input
    ),
]


def render() -> str:
    lines = [
        "# Troubleshooting",
        "",
        "Every entry below is a test (`tests/test_bad_inputs.py`): the error is raised before any",
        "compute where possible, its message names the problem, and nothing is written or lost.",
        "This page is generated from `tests/bad_input_catalogue.py`.",
        "",
    ]
    area = None
    for entry in CATALOGUE:
        if entry.area != area:
            area = entry.area
            lines += [
                f"## {area.capitalize()}",
                "",
                "| what went wrong | error | fix |",
                "|---|---|---|",
            ]
        pattern = entry.message.replace("\\", "").replace("|", "/")
        lines.append(f"| {entry.what} | `{entry.error.__name__}`: “{pattern}” | {entry.fix} |")
        if entry is CATALOGUE[-1] or CATALOGUE[CATALOGUE.index(entry) + 1].area != area:
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
