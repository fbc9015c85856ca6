"""Helpers for tests that run the command line in-process (tests/test_cli_robustness.py,
tests/test_user_project.py)."""
from balkin.cli import main


def run(argv, capsys):
    """main(argv) with captured output: (exit status, stdout, stderr); never a traceback."""
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    return code, out, err


def one_error_line(err, cmd):
    """The single line `balkin CMD: error: ...` that stderr must consist of."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith(f"balkin {cmd}: error: "), lines[0]
    return lines[0]
