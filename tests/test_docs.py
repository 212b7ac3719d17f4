"""The docs are part of the product: their tables match the code, their snippets load."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path
from typing import Any

import pytest
import trustme
import yaml

from otelkv import config
from otelkv.otlp import native
from otelkv.otlp.enrich import ATTRIBUTES
from tests.conftest import ROOT

DOCS = ROOT / "docs"


def yaml_blocks(path: Path) -> list[str]:
    return re.findall(r"```yaml\n(.*?)```", path.read_text(), re.S)


def flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_configuration_table_lists_every_key_with_its_default() -> None:
    text = (DOCS / "configuration.md").read_text()
    rows = dict(re.findall(r"^\| `([a-z_.]+)` \| (.+?) \|", text, re.M))
    defaults = flatten(config.to_dict(config.Config()))
    documented = {k: v for k, v in rows.items() if not k.startswith("OTELKV")}
    assert set(documented) == set(defaults)
    for key, cell in documented.items():
        value = defaults[key]
        if value is None:
            assert cell == "*(none)*", key
        elif isinstance(value, list):
            assert cell == f"`[{', '.join(value)}]`", key
        else:
            shown = {True: "true", False: "false"}.get(value, value) if isinstance(value, bool) else value
            assert cell == f"`{shown}`", key


def test_configuration_environment_table_matches_the_code() -> None:
    text = (DOCS / "configuration.md").read_text()
    rows = dict(re.findall(r"^\| `(OTELKV_[A-Z_]+)` \| `?([a-z_.]+)`? \|", text, re.M))
    assert rows == dict(config.ENVIRONMENT)
    assert f"| `{config.CONFIG_FILE_ENV}` |" in text
    assert f"| `{native.NO_EXTENSIONS_ENV}` |" in text


@pytest.mark.parametrize("index", range(len(yaml_blocks(DOCS / "configuration.md"))))
def test_configuration_examples_load(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    block = yaml_blocks(DOCS / "configuration.md")[index]
    data = yaml.safe_load(block)
    for key in ("ca_file", "bearer_token_file", "password_file"):  # stand in for mounted Secrets
        for section in ("auth", "tls"):
            if key in data.get("forward", {}).get(section, {}):
                stand_in = tmp_path / key
                stand_in.write_text("x")
                data["forward"][section][key] = str(stand_in)
    receive = data.get("receive", {})  # the receive side's certificates and token, real ones
    if "tls" in receive:
        pki = trustme.CA()
        leaf = pki.issue_cert("otelkv.test")
        for key, blob in (
            ("cert_file", leaf.cert_chain_pems[0]),
            ("key_file", leaf.private_key_pem),
            ("client_ca_file", pki.cert_pem),
        ):
            if key in receive["tls"]:
                blob.write_to_path(str(tmp_path / key))
                receive["tls"][key] = str(tmp_path / key)
    if "bearer_token_file" in receive.get("auth", {}):
        (tmp_path / "token").write_text("a-token\n")
        receive["auth"]["bearer_token_file"] = str(tmp_path / "token")
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(data))
    assert config.load(path, environ={}).forward.endpoint != "stdout"


def test_serve_doc_lists_every_attribute_otelkv_sets() -> None:
    text = (DOCS / "serve.md").read_text()
    for attribute in ATTRIBUTES:
        base = attribute.rsplit(".", 1)[0] if attribute.endswith(".uid") else attribute
        assert f"`{base}" in text, attribute


def test_readme_names_the_two_setup_commands() -> None:
    text = (ROOT / "README.md").read_text()
    assert "make demo" in text and "make test" in text


@pytest.mark.parametrize("path", sorted(DOCS.glob("*.md")), ids=lambda p: p.name)
def test_every_yaml_snippet_in_the_docs_parses(path: Path) -> None:
    for block in yaml_blocks(path):
        assert isinstance(yaml.safe_load(block), dict), block[:80]


def python_blocks() -> list[tuple[str, str]]:
    paths = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]
    blocks = [(p.name, b) for p in paths for b in re.findall(r"```python\n(.*?)```", p.read_text(), re.S)]
    return [(n, textwrap.dedent(b)) for n, b in blocks if not b.lstrip().startswith(">>>")]  # those: doctest


@pytest.mark.parametrize(
    ("name", "block"), python_blocks(), ids=[f"{n}-{i}" for i, (n, _) in enumerate(python_blocks())]
)
def test_every_python_snippet_runs(name: str, block: str) -> None:
    assert block.strip()
    exec(compile(block, name, "exec"), {})  # the README's example asserts what it shows
