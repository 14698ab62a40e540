"""`facetrail serve` on the command line: registration, options, and refusing an open bind."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from facetrail.cli.main import build_parser, main
from facetrail.cli.serve import serve


def test_serve_is_a_command() -> None:
    args = build_parser().parse_args(["serve", "--port", "0", "--api-key", "k"])
    assert args.handler is serve
    assert (args.host, args.port, args.api_key) == ("127.0.0.1", 0, "k")


def test_beyond_localhost_without_a_key_is_refused(
    tmp_path: Path,
    models_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FACETRAIL_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("FACETRAIL_MODELS_DIR", str(models_dir))
    monkeypatch.delenv("FACETRAIL_SERVE_API_KEY", raising=False)
    # serve() gives the server's logger a stderr handler if it has none; this test's stderr is
    # closed after it, so later tests' servers would log into a closed stream.
    monkeypatch.setattr(logging.getLogger("facetrail.server"), "handlers", [logging.NullHandler()])
    assert main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    assert "API key" in capsys.readouterr().err
