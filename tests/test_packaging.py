"""Packaging: set-up decisions (tools/bootstrap.py), the top-level API, the wheel and the sdist."""

from __future__ import annotations

import email
import importlib.util
import os
import re
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_bootstrap():
    spec = importlib.util.spec_from_file_location("bootstrap", ROOT / "tools" / "bootstrap.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bootstrap"] = module
    spec.loader.exec_module(module)
    return module


bootstrap = _load_bootstrap()

LINUX_WHEEL = "torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl"


def _plan(system="Linux", existing=None, index=None, wheels=(), links=("/opt/wheels",)):
    return bootstrap.plan_torch(
        system=system,
        existing_torch=existing,
        torch_index=index,
        local_wheels=[Path("/opt/wheels") / w for w in wheels],
        find_links=list(links),
        constraints_file="constraints.txt",
    )


# ---------------------------------------------------------------- set-up decisions


def test_linux_with_the_local_wheel_takes_it_pinned_by_the_constraints():
    plan = _plan(wheels=[LINUX_WHEEL])
    assert plan.source == "local"
    assert plan.torch_args is None  # resolved with the project, under the pin
    assert plan.project_args == ("--constraint", "constraints.txt")
    assert plan.env == {"UV_FIND_LINKS": "/opt/wheels"}


def test_linux_without_a_local_wheel_uses_pytorchs_cpu_index():
    plan = _plan(wheels=[], links=())
    assert plan.source == "cpu"
    assert plan.torch_args == ("--index-url", "https://download.pytorch.org/whl/cpu", "torch")
    assert "--constraint" not in plan.project_args  # the build machine's pin is not forced
    assert plan.env == {}


def test_macos_without_a_local_wheel_takes_the_platform_default():
    plan = _plan(system="Darwin", wheels=[], links=())
    assert plan.source == "default"
    assert plan.torch_args == ("torch",)
    assert "--index-url" not in plan.torch_args


@pytest.mark.parametrize(
    ("system", "version"),
    [("Linux", "2.13.0+cu130"), ("Darwin", "2.13.0"), ("Linux", "2.14.1+rocm6.4")],
)
def test_a_working_torch_is_never_refused_nor_replaced(system, version):
    plan = _plan(system=system, existing=version, wheels=[LINUX_WHEEL])
    assert plan.source == "existing"
    assert version in plan.reason
    assert plan.torch_args is None
    assert "--constraint" not in plan.project_args  # no downgrade to the pin


def test_an_explicit_choice_replaces_an_installed_torch():
    plan = _plan(existing="2.13.0+cpu", index="https://download.pytorch.org/whl/cu128")
    assert plan.source == "index"
    assert plan.torch_args == (
        "--reinstall-package",
        "torch",
        "--index-url",
        "https://download.pytorch.org/whl/cu128",
        "torch",
    )
    assert _plan(system="Linux", index="default").torch_args == ("torch",)
    assert _plan(system="Darwin", index="cpu").source == "cpu"


def test_bad_torch_index_values_are_refused_with_the_fix():
    with pytest.raises(ValueError, match=r"TORCH_INDEX='cuda'.*'local', 'cpu', 'default'"):
        _plan(index="cuda")
    with pytest.raises(ValueError, match="no torch wheel matching"):
        _plan(index="local", wheels=[])


@pytest.mark.parametrize(
    ("filename", "system", "machine", "expected"),
    [
        (LINUX_WHEEL, "Linux", "x86_64", True),
        (LINUX_WHEEL, "Linux", "aarch64", False),
        (LINUX_WHEEL, "Darwin", "arm64", False),
        ("torch-2.13.0-cp311-none-macosx_11_0_arm64.whl", "Darwin", "arm64", True),
        ("torch-2.13.0-cp311-none-macosx_11_0_arm64.whl", "Linux", "x86_64", False),
        ("torch-2.13.0-cp312-cp312-manylinux_2_28_x86_64.whl", "Linux", "x86_64", False),
        ("torch-2.14.1+cpu-cp311-cp311-manylinux_2_28_x86_64.whl", "Linux", "x86_64", False),
        ("torchvision-2.13.0-cp311-cp311-manylinux_2_28_x86_64.whl", "Linux", "x86_64", False),
        ("torch-2.13.0.tar.gz", "Linux", "x86_64", False),
    ],
)
def test_wheel_matching(filename, system, machine, expected):
    got = bootstrap.wheel_matches(
        filename, pin="2.13.0", python_tag="cp311", system=system, machine=machine
    )
    assert got is expected


def test_local_wheels_are_found_in_find_links_folders(tmp_path):
    (tmp_path / LINUX_WHEEL).write_bytes(b"")
    (tmp_path / "numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl").write_bytes(b"")
    dirs = bootstrap.find_links_dirs(f"file://{tmp_path} https://example.org/wheels", {})
    assert dirs == [str(tmp_path)]
    found = bootstrap.local_torch_wheels(
        [*dirs, str(tmp_path / "missing")],
        pin="2.13.0",
        python_tag="cp311",
        system="Linux",
        machine="x86_64",
    )
    assert [p.name for p in found] == [LINUX_WHEEL]
    both = bootstrap.find_links_dirs("/a /b", {"PIP_FIND_LINKS": "/b /c"})
    assert both == ["/a", "/b", "/c"]


def test_the_pin_is_read_from_the_constraints_file():
    assert bootstrap.torch_pin((ROOT / "constraints.txt").read_text()) == "2.13.0"
    assert bootstrap.torch_pin("# torch==1.0\nnumpy<3\n") is None
    assert bootstrap.torch_pin("torch == 2.9.1 ; sys_platform == 'linux'") == "2.9.1"


def test_bootstrap_dry_run_prints_its_decision(tmp_path):
    env = {**os.environ, "PIP_FIND_LINKS": "", "PIP_CONFIG_FILE": os.devnull}
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools" / "bootstrap.py"), "--dry-run"]
        + ["--venv", str(tmp_path / "venv"), "--constraints", str(ROOT / "constraints.txt")],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        check=True,
    )
    expected = "default" if sys.platform == "darwin" else "CPU build from PyTorch's index"
    assert expected in done.stdout or sys.platform not in ("linux", "darwin")
    assert "would run:" in done.stdout and "-e '.[test,docs]'" in done.stdout


def test_only_ci_insists_on_the_cpu_build_and_it_runs_the_readme_test_command():
    makefile = (ROOT / "Makefile").read_text()
    ci = (ROOT / ".ci" / "run").read_text()
    readme = (ROOT / "README.md").read_text()
    assert "+cpu" not in makefile.replace("# ", "")  # no refusal in the user's set-up
    assert re.search(r"\*\+cpu\)", ci), ".ci/run must check for the CPU build of torch"
    test_command = re.search(r"^make test\b", readme, flags=re.M)
    assert test_command, "the README names `make test`"
    assert re.search(r"^make test \|\|", ci, flags=re.M), ".ci/run runs exactly `make test`"
    for step in ("ruff check", "ruff format --check", "mypy", "mkdocs build --strict"):
        assert step in ci


# ---------------------------------------------------------------- top-level API

TOP_LEVEL = {
    "ConstraintSpec": "constrained_unlearn.problem",
    "EngineConfig": "constrained_unlearn.engine",
    "PairedData": "constrained_unlearn.engine",
    "Terms": "constrained_unlearn.engine",
    "UnlearningEngine": "constrained_unlearn.engine",
    "get_method": "constrained_unlearn.methods",
    "make_solver": "constrained_unlearn.solvers",
}


def _python(code: str, **kwargs) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), **kwargs.pop("env", {})}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, **kwargs
    )


def test_import_is_lazy_and_cheap():
    done = _python(
        "import sys, time; t = time.perf_counter(); import constrained_unlearn as c; "
        "dt = time.perf_counter() - t; "
        "heavy = sorted(m for m in ('torch', 'transformers', 'mlflow', 'datasets', "
        "'constrained_unlearn.engine') if m in sys.modules); print(heavy, dt)",
        check=True,
    )
    heavy, seconds = done.stdout.split("] ")
    assert heavy == "[", f"import constrained_unlearn pulled in {heavy}]"
    assert float(seconds) < 0.5


def test_curated_top_level_names_are_the_layers_objects():
    import importlib

    import constrained_unlearn

    assert sorted(constrained_unlearn.__all__) == sorted([*TOP_LEVEL, "__version__"])
    for name, module in TOP_LEVEL.items():
        assert getattr(constrained_unlearn, name) is getattr(importlib.import_module(module), name)
        assert name in dir(constrained_unlearn)
    with pytest.raises(AttributeError, match="has no attribute 'UnlearnEngine'"):
        _ = constrained_unlearn.UnlearnEngine  # type: ignore[attr-defined]


def _pyproject_version() -> str:
    text = (ROOT / "pyproject.toml").read_text()
    match = re.search(r'^version\s*=\s*"([^"]+)"', text, flags=re.M)
    assert match
    return match[1]


def test_version_comes_from_metadata_with_a_source_tree_fallback(tmp_path):
    import constrained_unlearn

    assert re.fullmatch(r"\d+(\.\d+)*([.+-]\S+)?", constrained_unlearn.__version__)
    # with no installed distribution, a source tree reads its pyproject.toml
    code = (
        "import importlib.metadata as m\n"
        "def missing(name): raise m.PackageNotFoundError(name)\n"
        "m.version = missing\n"
        "import constrained_unlearn\n"
        "print(constrained_unlearn.__version__)\n"
    )
    done = _python(code, check=True)
    assert done.stdout.strip() == _pyproject_version()


def test_python_dash_m_runs_the_cli():
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    via_m = subprocess.run(
        [sys.executable, "-m", "constrained_unlearn", "--help"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert via_m.returncode == 0, via_m.stderr
    assert via_m.stdout.startswith("usage: constrained-unlearn")
    assert "unlearn" in via_m.stdout and "demo" in via_m.stdout
    bad = subprocess.run(
        [sys.executable, "-m", "constrained_unlearn", "no-such-command"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr


# ---------------------------------------------------------------- the sdist and the wheel


def _source_files() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    if listed.returncode != 0:  # an unpacked sdist is no git checkout: take the tree
        return [
            p.relative_to(ROOT).as_posix()
            for p in ROOT.rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and ".egg-info" not in str(p)
        ]
    return [f for f in listed.stdout.splitlines() if (ROOT / f).is_file()]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """sdist built from a copy of the source tree, then the wheel built from that sdist."""
    tmp = tmp_path_factory.mktemp("dist")
    src = tmp / "src"
    for rel in _source_files():
        target = src / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes((ROOT / rel).read_bytes())
    out = tmp / "out"
    out.mkdir()
    build = (
        "import sys, warnings, setuptools.build_meta as b\n"
        "warnings.simplefilter('always')\n"
        "kind, out = sys.argv[1], sys.argv[2]\n"
        "print(getattr(b, 'build_' + kind)(out))\n"
    )

    def hook(kind: str, cwd: Path) -> tuple[str, str]:
        done = subprocess.run(
            [sys.executable, "-c", build, kind, str(out)],
            cwd=cwd,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONWARNINGS": "always"},
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return done.stdout.strip().splitlines()[-1], done.stdout + done.stderr

    sdist_name, sdist_log = hook("sdist", src)
    sdist = out / sdist_name
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp / "unpacked", filter="data")
    (unpacked,) = (tmp / "unpacked").iterdir()
    wheel_name, wheel_log = hook("wheel", unpacked)
    return {
        "sdist": sdist,
        "wheel": out / wheel_name,
        "log": sdist_log + wheel_log,
        "tmp": tmp,
    }


def test_build_has_no_license_or_setuptools_deprecation_warning(built):
    log = built["log"]
    assert "SetuptoolsDeprecationWarning" not in log
    assert not re.search(r"(?i)license.*(deprecat|warning)|(deprecat|warning).*license", log)


def test_wheel_ships_configs_license_and_metadata(built):
    import constrained_unlearn.configs as configs

    with zipfile.ZipFile(built["wheel"]) as whl:
        names = set(whl.namelist())
        (metadata_name,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = email.message_from_bytes(whl.read(metadata_name))
    bundled = {f"constrained_unlearn/configs/{name}.yaml" for name in configs.available_configs()}
    assert bundled and bundled <= names, sorted(bundled - names)
    assert "constrained_unlearn/configs/accelerate/fsdp.yaml" in names
    assert {"constrained_unlearn/__main__.py", "constrained_unlearn/py.typed"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith("tests/") for n in names)

    assert metadata["License-Expression"] == "Apache-2.0"
    assert metadata["Version"] == _pyproject_version()
    urls = metadata.get_all("Project-URL") or []
    assert {u.split(",")[0] for u in urls} >= {"Homepage", "Documentation", "Source", "Issues"}
    classifiers = metadata.get_all("Classifier") or []
    assert "Programming Language :: Python :: 3" in classifiers
    assert not any(c.startswith("License ::") for c in classifiers)  # the SPDX field says it
    requires = metadata.get_all("Requires-Dist") or []
    core = [r for r in requires if "extra ==" not in r]
    assert any(r.startswith("mlflow-skinny") for r in core)
    assert not any(re.match(r"mlflow\b(?!-)", r) for r in core), "full mlflow is an extra"
    assert any(re.match(r"mlflow\b(?!-).*extra == \"ui\"", r) for r in requires)
    assert any(re.match(r"mlflow\b(?!-).*extra == \"test\"", r) for r in requires)
    assert any(r.startswith("torch") and "==" not in r for r in core), "torch stays a range"


def test_sdist_carries_what_its_tests_and_make_need(built):
    with tarfile.open(built["sdist"]) as tar:
        names = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    tracked = set(_source_files())
    for rel in ("LICENSE", "Makefile", "constraints.txt", "mkdocs.yml", ".ci/run"):
        assert rel in names, rel
    for folder in ("tests/", "docs/", "tools/", "examples/", "benchmarks/"):
        wanted = {f for f in tracked if f.startswith(folder)}
        assert wanted and wanted <= names, sorted(wanted - names)[:5]
    assert "tests/conftest.py" in names and "tests/llm/conftest.py" in names
    assert not any("__pycache__" in n for n in names)


def test_installed_wheel_runs_and_finds_its_configs(built):
    site = built["tmp"] / "site"
    with zipfile.ZipFile(built["wheel"]) as whl:
        whl.extractall(site)
    elsewhere = built["tmp"] / "cwd"
    elsewhere.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    code = (
        "import constrained_unlearn, constrained_unlearn.configs as c\n"
        "print(constrained_unlearn.__file__)\n"
        "print(constrained_unlearn.__version__)\n"
        "print(sorted(c.available_configs()))\n"
        "print(c.resolve_config('accelerate/fsdp').read_text().strip() != '')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=elsewhere
    )
    assert done.returncode == 0, done.stderr
    where, version, names, readable = done.stdout.strip().splitlines()
    assert Path(where).is_relative_to(site)
    assert version == _pyproject_version()
    assert "tofu_llama32_1b_pdu" in names and "accelerate/fsdp" in names
    assert readable == "True"
    cli = subprocess.run(
        [sys.executable, "-m", "constrained_unlearn", "--help"],
        capture_output=True,
        text=True,
        env=env,
        cwd=elsewhere,
    )
    assert cli.returncode == 0 and "usage: constrained-unlearn" in cli.stdout


def test_pyproject_and_mkdocs_agree_on_the_project_urls():
    pyproject = (ROOT / "pyproject.toml").read_text()
    mkdocs = (ROOT / "mkdocs.yml").read_text()
    source = re.search(r'^Source\s*=\s*"([^"]+)"', pyproject, flags=re.M)
    docs = re.search(r'^Documentation\s*=\s*"([^"]+)"', pyproject, flags=re.M)
    assert source and docs
    assert f"repo_url: {source[1]}" in mkdocs
    assert f"site_url: {docs[1]}" in mkdocs
