"""The README's Python block runs as written, against a tiny local chat model.

The block reads its model id from ``UNLEARN_MODEL`` (documented in the README); the test points
that variable at a tiny Llama with a chat template saved in a temporary folder and changes
nothing else. The block must train, save a ``from_pretrained`` folder and print its evaluation.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# A cut-down Llama-3 chat template: header tokens, a dated system turn, end-of-turn tokens.
CHAT_TEMPLATE = (
    "{{ bos_token }}<|start_header_id|>system<|end_header_id|>\n\n"
    "Today Date: {{ date_string | default('26 Jul 2024') }}<|eot_id|>"
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def readme_python_block() -> str:
    """The first ```python block after the README's "## In Python" heading."""
    text = README.read_text(encoding="utf-8")
    section = text.split("\n## In Python\n", 1)
    assert len(section) == 2, "README.md has no '## In Python' section"
    match = re.search(r"```python\n(.*?)\n```", section[1], flags=re.S)
    assert match, "the '## In Python' section has no ```python block"
    return match[1] + "\n"


def build_tiny_chat_model(folder: Path, corpus: list[str]) -> None:
    """A byte-level BPE tokenizer trained on ``corpus`` and a random 2-layer Llama, saved."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    specials = ["<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<|end_header_id|>"]
    specials += ["<|pad|>"]
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(corpus, trainer=trainer)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>",
        pad_token="<|pad|>",
        additional_special_tokens=["<|start_header_id|>", "<|end_header_id|>"],
    )
    tok.chat_template = CHAT_TEMPLATE
    import torch

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        tie_word_embeddings=True,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)


def test_readme_block_is_the_documented_one():
    block = readme_python_block()
    # the only seam the test uses: the model id, read from UNLEARN_MODEL with the real default
    assert re.search(
        r'os\.environ\.get\("UNLEARN_MODEL", "open-unlearning/tofu_Llama-3\.2-1B-Instruct_full"\)',
        block,
    )
    for step in ("engine.fit()", "save_pretrained(", "rouge_l_recall(", 'kind="chat"'):
        assert step in block, step
    compile(block, "README.md", "exec")


@pytest.mark.timeout(600)
def test_readme_block_runs_as_written(tmp_path):
    block = readme_python_block()
    rows_text = re.findall(r'"(?:question|answer)": "([^"]+)"', block)
    assert len(rows_text) >= 8, "the block defines its own data rows"
    model_dir = tmp_path / "tiny-chat-llama"
    build_tiny_chat_model(model_dir, rows_text * 4)
    script = tmp_path / "readme_block.py"
    script.write_text(block, encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    env = {
        **os.environ,
        "UNLEARN_MODEL": str(model_dir),
        "PYTHONPATH": str(ROOT),
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
    }
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    out = done.stdout
    step = re.search(r"(\d+) steps: retain NLL ([\d.]+), λ ([\d.]+)", out)
    assert step, out
    # 4 forget rows, batch 2, accumulation 2: one optimizer step per epoch, 3 epochs
    assert int(step[1]) == 3
    scores = re.search(r"ROUGE-L recall: forget ([\d.]+), retain ([\d.]+)", out)
    assert scores, out
    assert all(0.0 <= float(s) <= 1.0 for s in scores.groups())

    saved = work / "outputs" / "unlearned"
    assert (saved / "config.json").is_file()
    assert (saved / "model.safetensors").is_file()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reloaded = AutoModelForCausalLM.from_pretrained(saved)
    original = AutoModelForCausalLM.from_pretrained(model_dir)
    assert AutoTokenizer.from_pretrained(saved).chat_template == CHAT_TEMPLATE
    moved = [
        name
        for (name, a), (_, b) in zip(
            reloaded.named_parameters(), original.named_parameters(), strict=True
        )
        if not bool((a == b).all())
    ]
    assert moved, "fit() changed no weight of the saved model"
