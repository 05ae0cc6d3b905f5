"""The README's codec example runs as written (from the repository root)."""
import os
import re

from pbtest import REPO


def test_readme_codec_example_runs(capsys):
    text = (REPO / "README.md").read_text()
    section = text.split("## The codec as a library", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    cwd = os.getcwd()
    os.chdir(REPO)
    try:
        exec(compile(code, "README.md", "exec"), {})
    finally:
        os.chdir(cwd)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "rdkafka 3 0"
    assert out[1].startswith("0 b'key-1' b'golden value one")
    assert out[2] == "1 b'key-2' None [('h-null', None)]"
