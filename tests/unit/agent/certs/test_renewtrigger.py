"""The node side of the automatic renewal: the cron file, the token file, the call to the platform."""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import stat
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest

from dbtls_agent.certs import renewtrigger
from dbtls_agent.errors import AgentError

URL = "https://app.platform.example/env1-sqldb-dbtls-renew?appid=abc123"
CRON_LINE = re.compile(r"^(\d{1,2}) (\d{1,2}) \* \* \* root /usr/local/sbin/dbtls-agent renew check "
                       r"--cert-dir (\S+) >>/var/log/dbtls-renew\.log 2>&1$")


def installed(tmp_path: Path, seed: int = 3, url: str = URL) -> tuple[Path, Path]:
    cert_dir, cron = tmp_path / "certs", tmp_path / "cron.d" / "dbtls-renew"
    renewtrigger.install(str(cert_dir), url, cron_file=str(cron), rng=random.Random(seed))
    return cert_dir, cron


def token_of(cert_dir: Path) -> str:
    return (cert_dir / ".dbtls-state" / "renew-token").read_text()


def test_cron_file_is_one_daily_root_line_without_the_token(tmp_path):
    cert_dir, cron = installed(tmp_path)
    text = cron.read_text()
    jobs = [line for line in text.splitlines() if line and not line.startswith("#") and "=" not in line]
    assert len(jobs) == 1, text
    m = CRON_LINE.match(jobs[0])
    assert m, jobs[0]
    assert 0 <= int(m.group(1)) <= 59 and 0 <= int(m.group(2)) <= 23 and m.group(3) == str(cert_dir)
    assert token_of(cert_dir) not in text and URL not in text
    assert stat.S_IMODE(cron.stat().st_mode) == 0o644


def test_the_minute_is_drawn_per_install(tmp_path):
    a = installed(tmp_path / "a", seed=1)[1].read_text()
    b = installed(tmp_path / "b", seed=2)[1].read_text()
    assert CRON_LINE.match(a.splitlines()[-1]).groups()[:2] != CRON_LINE.match(b.splitlines()[-1]).groups()[:2]


def test_the_node_draws_a_256_bit_token_0600_and_answers_only_its_sha256(tmp_path):
    cert_dir, cron = tmp_path / "certs", tmp_path / "cron"
    out = renewtrigger.install(str(cert_dir), URL, cron_file=str(cron))
    token_file = cert_dir / ".dbtls-state" / "renew-token"
    token = token_file.read_text()
    assert re.fullmatch(r"[0-9a-f]{64}", token)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert stat.S_IMODE((cert_dir / ".dbtls-state").stat().st_mode) == 0o700
    assert token not in (cert_dir / ".dbtls-state" / "renew.json").read_text()
    assert out["token_sha256"] == hashlib.sha256(token.encode()).hexdigest() and out["token"] == "new"
    assert token not in json.dumps(out)
    other = renewtrigger.install(str(tmp_path / "other"), URL, cron_file=str(cron))
    assert other["token_sha256"] != out["token_sha256"]


def test_a_valid_token_for_the_same_url_is_kept(tmp_path):
    cert_dir, cron = installed(tmp_path)
    token = token_of(cert_dir)
    again = renewtrigger.install(str(cert_dir), URL, cron_file=str(cron))
    assert token_of(cert_dir) == token and again["token"] == "kept"
    assert again["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()


@pytest.mark.parametrize("spoil", ["other-url", "readable", "short", "not-alnum", "missing-url"])
def test_a_token_is_drawn_again_when_the_old_one_is_not_valid_for_this_url(tmp_path, spoil):
    """Another URL (a clone: another environment's script), a file others can read, a token the
    platform script would refuse, or no URL beside it: a new token."""
    cert_dir, cron = installed(tmp_path)
    state_dir = cert_dir / ".dbtls-state"
    token = token_of(cert_dir)
    url = URL
    if spoil == "other-url":
        url = URL.replace("env1", "env2")
    elif spoil == "readable":
        os.chmod(state_dir / "renew-token", 0o644)
    elif spoil == "short":
        (state_dir / "renew-token").write_text("x" * 63)
    elif spoil == "not-alnum":
        (state_dir / "renew-token").write_text(token[:-1] + "!")
    else:
        (state_dir / "renew.json").unlink()
    out = renewtrigger.install(str(cert_dir), url, cron_file=str(cron))
    assert out["token"] == "new" and token_of(cert_dir) != token
    assert stat.S_IMODE((state_dir / "renew-token").stat().st_mode) == 0o600


@pytest.mark.parametrize("token", ["short", "x" * 63, "Tk" * 32 + "!", "Tk" * 32 + " ", "x" * 1025])
def test_bad_tokens_are_refused(tmp_path, token):
    with pytest.raises(AgentError):
        renewtrigger.check_token(token)


@pytest.mark.parametrize("url", ["http://app.example/x", "https:///x", "https://u@app.example/x",
                                 "https://app.example/x#f", "https://app.example/x?token=abc", "ftp://x/y"])
def test_bad_urls_are_refused(tmp_path, url):
    with pytest.raises(AgentError):
        renewtrigger.install(str(tmp_path), url, cron_file=str(tmp_path / "cron"))


class Recorder:
    def __init__(self, status: int = 200, body: bytes = b'{"result": 0}') -> None:
        self.calls: list[tuple[str, bytes]] = []
        self.status, self.body = status, body

    def __call__(self, url: str, body: bytes) -> tuple[int, bytes]:
        self.calls.append((url, body))
        return self.status, self.body


def test_nothing_due_makes_no_call(tmp_path):
    cert_dir, _ = installed(tmp_path)
    post = Recorder()
    assert renewtrigger.check(str(cert_dir), {"any_due": False, "due": []}, post) == {"called": False, "due": []}
    assert post.calls == []


def test_a_due_certificate_makes_one_post_with_the_token_in_the_body(tmp_path):
    cert_dir, _ = installed(tmp_path)
    post = Recorder()
    out = renewtrigger.check(str(cert_dir), {"any_due": True, "due": ["/c/server/server.crt"]}, post)
    assert out == {"called": True, "due": ["/c/server/server.crt"]}
    assert len(post.calls) == 1
    url, body = post.calls[0]
    token = token_of(cert_dir)
    assert url == URL and token not in url
    assert urllib.parse.parse_qs(body.decode()) == {"token": [token]}


@pytest.mark.parametrize("status,body", [(500, b""), (200, b'{"result": 4, "error": "wrong token"}'), (200, b"<html>")])
def test_a_refused_call_is_an_error_that_never_shows_the_token(tmp_path, status, body):
    cert_dir, _ = installed(tmp_path)
    with pytest.raises(AgentError) as err:
        renewtrigger.check(str(cert_dir), {"any_due": True, "due": ["x"]}, Recorder(status, body))
    assert token_of(cert_dir) not in str(err.value)


def test_a_token_file_others_can_read_is_refused(tmp_path):
    cert_dir, _ = installed(tmp_path)
    os.chmod(cert_dir / ".dbtls-state" / "renew-token", 0o644)
    post = Recorder()
    with pytest.raises(AgentError, match="0600"):
        renewtrigger.check(str(cert_dir), {"any_due": True, "due": ["x"]}, post)
    assert post.calls == []


def test_remove_takes_all_three_files_and_is_idempotent(tmp_path):
    cert_dir, cron = installed(tmp_path)
    out = renewtrigger.remove(str(cert_dir), str(cron))
    assert len(out["removed"]) == 3 and not cron.exists()
    assert not (cert_dir / ".dbtls-state" / "renew-token").exists()
    assert renewtrigger.remove(str(cert_dir), str(cron)) == {"removed": []}


def test_cli_install_reads_the_url_from_stdin_and_prints_only_the_digest(tmp_path):
    """``renew install --from-manifest``: the URL arrives base64 on stdin; the output is the token's
    SHA-256, never the token; a second run keeps the token."""
    import base64

    node_scripts = Path(__file__).resolve().parents[4] / "node-scripts"
    cron = tmp_path / "cron"

    def run(stdin: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "dbtls_agent", "renew", "install", "--from-manifest",
                               "--cert-dir", str(tmp_path / "c"), "--cron-file", str(cron)],
                              input=stdin, capture_output=True, text=True,
                              env={**os.environ, "PYTHONPATH": str(node_scripts)}, check=False)

    proc = run(f"url={base64.b64encode(URL.encode()).decode()}\n")
    assert proc.returncode == 0, proc.stderr
    token = token_of(tmp_path / "c")
    answer = json.loads(proc.stdout)
    assert token not in proc.stdout + proc.stderr
    assert answer["cron_file"] == str(cron) and answer["token"] == "new"
    assert answer["token_sha256"] == hashlib.sha256(token.encode()).hexdigest()
    again = run(f"url={base64.b64encode(URL.encode()).decode()}\n")
    assert json.loads(again.stdout)["token"] == "kept" and token_of(tmp_path / "c") == token
    refused = run(f"token={base64.b64encode(b'x' * 64).decode()} url={base64.b64encode(URL.encode()).decode()}\n")
    assert refused.returncode != 0 and "with a name of url," in refused.stderr
