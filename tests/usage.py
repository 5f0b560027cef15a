"""The one check every refusal test makes: exit 2, one line on stderr, no traceback."""

from click.testing import CliRunner

from lstm_inspect.cli import main


def usage_error(*words: str) -> str:
    """The one-line usage error `lstm-inspect WORDS` prints."""
    result = CliRunner().invoke(main, list(words))
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    return lines[0]
