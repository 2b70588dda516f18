"""The renewal plan (``certs plan``) made from ``certs due`` reports, and the next renewal date."""

import base64
import io
import json
import sys

import pytest

from dbtls_agent import cli
from dbtls_agent.certs import due as certs_due
from dbtls_agent.certs import renewplan

CERT = "/var/lib/jelastic/keys/SSL-TLS"


def item(role, due=False, path=None, not_after="2030-01-31T00:00:00Z", reason=None, renewed_by="re-issue certificates"):
    return {"role": role, "path": path or f"{CERT}/{role}/{role}.crt", "due": due,
            "reason": reason or ("ends within 30 days" if due else None), "not_after": not_after,
            "renewed_by": renewed_by}


def report(*items):
    return {"certificates": list(items), "any_due": any(i["due"] for i in items)}


CA_OK = item("ca", renewed_by="CA rotation", path=CERT + "/ca/ca.crt", not_after="2036-01-01T00:00:00Z")


def test_nothing_due_is_no_work():
    the_plan = renewplan.plan([(11, report(item("server"), item("client"), CA_OK)), (12, report(item("server")))],
                              11, report(item("server"), CA_OK))
    assert renewplan.scope(the_plan) == "none" and not renewplan.has_work(the_plan)
    assert renewplan.answer(the_plan, "work", 30) == "no"
    assert renewplan.answer(the_plan, "summary", 30) == "nothing is due within 30 days; nothing was changed."


@pytest.mark.parametrize("due_roles,scope", [
    ({12: ["server"]}, "server"),
    ({11: ["client"]}, "client"),
    ({11: ["client"], 12: ["server"]}, "all"),
    ({11: ["server", "client"]}, "all"),
])
def test_scope_follows_what_is_due_on_any_node(due_roles, scope):
    reports = [(n, report(*(item(r, due=r in due_roles.get(n, [])) for r in ("server", "client")))) for n in (11, 12)]
    the_plan = renewplan.plan(reports, 11, reports[0][1])
    assert renewplan.answer(the_plan, "scope", 30) == scope
    assert renewplan.answer(the_plan, "work", 30) == "yes"


def test_kits_and_user_certificates_only_from_the_ca_node_in_the_layer():
    ca = report(item("kit", True, CERT + "/kits/app_user/client.crt", renewed_by="kit build"),
                item("user-client", True, CERT + "/client/users/bob/client.crt", renewed_by="user-cert"),
                item("user-client", True, CERT + "/client/users/-bad/client.crt", renewed_by="user-cert"))
    elsewhere = report(item("kit", True, CERT + "/kits/eve/client.crt", renewed_by="kit build"))
    the_plan = renewplan.plan([(11, ca), (12, elsewhere)], 11, ca)
    assert (the_plan["kits"], the_plan["users"]) == (["app_user"], ["bob"])
    assert renewplan.scope(the_plan) == "none" and renewplan.has_work(the_plan)
    assert renewplan.answer(the_plan, "kits", 30) == "app_user\n"
    assert renewplan.answer(the_plan, "users", 30) == "bob\n"
    assert "-bad" in renewplan.summary(the_plan, 30) and "Left alone" in renewplan.summary(the_plan, 30)
    # A proxy layer: the CA node is not in it, so its kits stay with the database layer's renewal.
    proxy_plan = renewplan.plan([(21, report(item("server")))], 11, ca)
    assert not renewplan.has_work(proxy_plan)


def test_a_due_ca_is_reported_never_renewed_on_every_layer():
    ca_due = item("ca", True, CERT + "/ca/ca.crt", renewed_by="CA rotation")
    root_due = item("server-root", True, CERT + "/server/root.crt", renewed_by="CA rotation")
    the_plan = renewplan.plan([(21, report(item("server"), root_due))], 11, report(ca_due))
    assert not renewplan.has_work(the_plan)
    text = renewplan.summary(the_plan, 30)
    assert text.startswith("nothing is due within 30 days") and "The CA is due" in text
    assert f"node21: {CERT}/server/root.crt" in text and f"node11: {CERT}/ca/ca.crt" in text
    assert "Everything, including a new CA" in text


def test_malformed_reports_are_ignored_entry_by_entry():
    the_plan = renewplan.plan([(11, {"certificates": "x"}), (12, {"certificates": [1, {"role": "server", "due": "yes"}]})],
                              11, None)
    assert not renewplan.has_work(the_plan)


def test_next_renewal_is_the_earliest_end_minus_the_window():
    items = [item("server", not_after="2028-03-31T12:00:00Z"), item("client", not_after="2027-03-31T12:00:00Z"),
             item("ca-old", not_after="2026-01-01T00:00:00Z", renewed_by=None),
             {"role": "kit", "path": "x", "renewed_by": "kit build", "not_after": None}]
    nxt = renewplan.next_renewal(items, 30)
    assert nxt == {"date": "2027-03-01T12:00:00Z", "role": "client", "path": CERT + "/client/client.crt",
                   "renewed_by": "re-issue certificates"}
    assert renewplan.next_renewal([], 30) is None
    text = certs_due.text_line({"certificates": [dict(i, due=False) for i in items[:2]], "next_renewal": nxt})
    assert text == "next renewal 2027-03-01 (client, by re-issue certificates)"
    text = certs_due.text_line({"certificates": [item("server", True)], "next_renewal": None})
    assert text == "due now: server (ends within 30 days); no managed certificate here"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def run_plan(capsys, monkeypatch, stdin: str, *args):
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    capsys.readouterr()
    try:
        code = cli.main(["certs", "plan", "--from-manifest", *args])
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def manifest_input(reports, ca_report) -> str:
    """What the renew action hands the CA node: the list as it collects it, and the CA's report."""
    listed = "".join(f" {n}:{b64(json.dumps(r).encode())}" for n, r in reports)
    return b64(listed.encode()) + "\n" + b64(json.dumps(ca_report).encode() if ca_report else b"") + "\n"


def test_command_answers_from_the_manifest_payload(capsys, monkeypatch):
    reports = [(11, report(item("server"))), (12, report(item("server", True)))]
    text = manifest_input(reports, reports[0][1])
    assert run_plan(capsys, monkeypatch, text, "--ca-node", "11", "--show", "scope")[:2] == (0, "server")
    assert run_plan(capsys, monkeypatch, text, "--ca-node", "11", "--show", "work")[:2] == (0, "yes")
    code, out, _ = run_plan(capsys, monkeypatch, text, "--ca-node", "11")
    assert code == 0 and out == "renewing server certificates (due on node12)."
    code, out, _ = run_plan(capsys, monkeypatch, text, "--ca-node", "11", "--show", "json")
    assert json.loads(out)["server"] == [12]
    # A CA node without the agent printed nothing: its report is empty, not an error.
    empty_ca = manifest_input(reports, None)
    assert run_plan(capsys, monkeypatch, empty_ca, "--ca-node", "11", "--show", "scope")[:2] == (0, "server")


@pytest.mark.parametrize("stdin,message", [
    ("", "expected two base64 lines"),
    ("not base64!\n\n", "report list is not base64"),
    (b64(b" 12:" + b64(b"{not json").encode()) + "\n\n", "the report of node 12 is not the JSON 'certs due' prints"),
    (b64(b" 12:" + b64(b"[]").encode()) + "\n\n", "not the JSON 'certs due' prints"),
    (b64(b" 12:; rm -rf /") + "\n\n", "is not '<node id>:<base64>'"),
    (b64(b" 12:") + "\n" + b64(b"{}") + "\n", "the report of the CA node 11 is not the JSON"),
])
def test_command_refuses_what_is_not_a_report(capsys, monkeypatch, stdin, message):
    code, out, err = run_plan(capsys, monkeypatch, stdin, "--ca-node", "11", "--show", "scope")
    assert code != 0 and out == "" and message in err and len(err.strip().splitlines()) == 1, err


def test_command_refuses_bad_arguments(capsys, monkeypatch):
    code, _, err = run_plan(capsys, monkeypatch, "", "--ca-node", "x", "--show", "scope")
    assert code == 2 and "not a node id" in err
    code, _, err = run_plan(capsys, monkeypatch, "", "--ca-node", "11", "--show", "delete")
    assert code == 2 and "invalid choice" in err
