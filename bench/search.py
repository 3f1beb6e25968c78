#!/usr/bin/env python3
"""SEARCH BODY latency on one mailbox of corpus messages: tme with its full-text index, tme
reading every message (`search.enabled = false`), and Dovecot without an fts plugin (which
reads every message too).

    bench/search.py TME_BINARY [--corpus DIR] [--messages N] [--rounds R]

Imports the first N `.eml` files of the corpus (path order) into a fresh tme data directory
with `tme import`, serves it on free loopback ports, and asks each query word R times with
`UID SEARCH BODY` over implicit TLS (imaplib), first with the index (the first query builds
it; its time is reported apart), then with the index off after a restart. Dovecot gets the
same files in a Maildir and answers over a pipe (its `imap` binary, pre-authenticated, as in
the tests), after one warm-up query so its cache files exist. Prints median and p90 in ms per
query word and server, and checks that the three answer the same counts (Dovecot's may
differ on messages it decodes differently; the difference is printed, not fatal).
"""

import argparse
import imaplib
import os
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

WORDS = ["money", "linux", "click here", "unsubscribe", "spamassassin", "zzzqqq"]


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for each in sockets:
        each.bind(("127.0.0.1", 0))
    ports = [each.getsockname()[1] for each in sockets]
    for each in sockets:
        each.close()
    return ports


def corpus_files(corpus, count):
    files = []
    for root, _, names in os.walk(corpus):
        files.extend(os.path.join(root, name) for name in names if name.endswith(".eml"))
    return sorted(files)[:count]


def timed_searches(session, rounds):
    results = {}
    for word in WORDS:
        times = []
        count = None
        for _ in range(rounds):
            start = time.perf_counter()
            typ, data = session.uid("SEARCH", "BODY", f'"{word}"')
            times.append((time.perf_counter() - start) * 1000)
            assert typ == "OK", (typ, data)
            count = len(data[0].split())
        times.sort()
        results[word] = (statistics.median(times), times[int(len(times) * 0.9) - 1], count)
    return results


def tme_session(port):
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    session = imaplib.IMAP4_SSL("127.0.0.1", port, ssl_context=context)
    session.login("bench@bench.test", "bench password")
    session.select("INBOX")
    return session


def serve(tme, data, environment):
    log = open(os.path.join(data, "bench.log"), "a")
    process = subprocess.Popen([tme, "--data-dir", data, "serve"], stdout=log, stderr=log,
                               env={**os.environ, **environment})
    return process


def wait_port(port):
    for _ in range(600):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError("tme did not start")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("tme")
    parser.add_argument("--corpus", default=os.path.join(os.path.dirname(__file__), "../../shared/corpus"))
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=20)
    arguments = parser.parse_args()
    files = corpus_files(arguments.corpus, arguments.messages)
    work = tempfile.mkdtemp(prefix="tme-search-bench.")
    data = os.path.join(work, "data")
    tme = os.path.abspath(arguments.tme)
    run = lambda *args, **kw: subprocess.run([tme, "--data-dir", data, *args], check=True,
                                             stdout=subprocess.DEVNULL, **kw)
    run("init")
    run("partner", "add", "Bench")
    run("domain", "add", "bench.test", "--partner", "Bench")
    run("account", "add", "bench@bench.test", "--password-stdin", input=b"bench password\n")
    messages = os.path.join(work, "messages")
    os.makedirs(messages)
    for number, path in enumerate(files):
        shutil.copy(path, os.path.join(messages, f"{number:05}.eml"))
    run("import", "bench@bench.test", messages)
    roles = ["smtp", "submission", "submissions", "imap", "imaps", "pop3", "pop3s", "http", "dns"]
    ports = dict(zip(roles, free_ports(len(roles))))
    environment = {f"TME_LISTEN__{role.upper()}": f"127.0.0.1:{port}" for role, port in ports.items()}
    imaps = ports["imaps"]
    answers = {}
    print(f"{len(files)} corpus messages in one mailbox, {arguments.rounds} rounds per word")

    for label, enabled in (("tme, index", "true"), ("tme, scan", "false")):
        process = serve(tme, data, {**environment, "TME_SEARCH__ENABLED": enabled})
        try:
            wait_port(imaps)
            session = tme_session(imaps)
            start = time.perf_counter()
            session.uid("SEARCH", "BODY", "warmup")
            print(f"{label}: first search {1000 * (time.perf_counter() - start):.0f} ms"
                  + (" (builds the index)" if enabled == "true" else ""))
            answers[label] = timed_searches(session, arguments.rounds)
            session.logout()
        finally:
            process.terminate()
            process.wait()

    if os.path.exists("/usr/lib/dovecot/imap"):
        home = os.path.join(work, "dovecot")
        mail = os.path.join(home, "mail")
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(mail, sub))
        for number, path in enumerate(files):
            shutil.copy(path, os.path.join(mail, "cur", f"{number}.bench:2,"))
        config = os.path.join(home, "dovecot.conf")
        with open(config, "w") as file:
            file.write(f"mail_location = maildir:{mail}:LAYOUT=fs:INBOX={mail}\n"
                       f"base_dir = {home}/run\nlog_path = {home}/log\nssl = no\n"
                       "mail_uid = nobody\nmail_gid = nogroup\n")
        subprocess.run(["chown", "-R", "nobody:nogroup", home], check=True)
        os.chmod(work, 0o755)
        session = imaplib.IMAP4_stream(f"env USER=bench HOME={home} /usr/lib/dovecot/imap -c {config}")
        session.select("INBOX")
        session.uid("SEARCH", "BODY", "warmup")
        answers["dovecot"] = timed_searches(session, arguments.rounds)
        session.logout()

    labels = list(answers)
    print("word".ljust(14) + "".join(f"{label + ' median/p90 ms':>30}" for label in labels)
          + "  matches")
    for word in WORDS:
        row = word.ljust(14)
        for label in labels:
            median, p90, _ = answers[label][word]
            row += f"{median:>20.1f} / {p90:>7.1f}"
        row += "  " + "/".join(str(answers[label][word][2]) for label in labels)
        print(row)
    for word in WORDS:
        if answers["tme, index"][word][2] != answers["tme, scan"][word][2]:
            print(f"MISMATCH index/scan on {word!r}", file=sys.stderr)
            sys.exit(1)
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
