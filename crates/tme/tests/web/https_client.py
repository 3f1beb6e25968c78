"""The webmail over the `https` listener (TLS from the first byte, the node's certificate),
with Python's standard clients (ssl, http.client, urllib) and with curl (OpenSSL): the
handshake offers HTTP/1.1 by ALPN; every answer carries Strict-Transport-Security and the
plain listener's do not; a login over HTTPS keeps its Secure session cookie and reads the
mailbox; a client that connects and says nothing holds up nobody; a plain-text request to
the TLS port is not served; a wrong certificate name is refused by a checking client.

Environment: HTTP_PORT, HTTPS_PORT, CERTIFICATE, HOSTNAME (the certificate's name),
USER_ADDRESS, PASSWORD; BASE_URL (https://127.0.0.1:HTTPS_PORT) for http_client.
"""

import http.client
import os
import socket
import ssl
import subprocess
import time

from http_client import Client, tls_context

HTTPS_PORT = int(os.environ["HTTPS_PORT"])
HTTP_PORT = int(os.environ["HTTP_PORT"])
HOSTNAME = os.environ["HOSTNAME"]
HSTS = "max-age=31536000"


def https_get(path):
    connection = http.client.HTTPSConnection("127.0.0.1", HTTPS_PORT, timeout=30,
                                             context=tls_context())
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def main():
    # ALPN: the server names HTTP/1.1, the one protocol it speaks.
    context = tls_context()
    context.set_alpn_protocols(["h2", "http/1.1"])
    with socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=30) as raw:
        with context.wrap_socket(raw) as tls:
            assert tls.selected_alpn_protocol() == "http/1.1", tls.selected_alpn_protocol()
            assert tls.version() in ("TLSv1.2", "TLSv1.3"), tls.version()

    # HSTS on HTTPS only.
    status, headers, _ = https_get("/login")
    assert status == 200, status
    assert headers["Strict-Transport-Security"] == HSTS, dict(headers)
    plain = http.client.HTTPConnection("127.0.0.1", HTTP_PORT, timeout=30)
    plain.request("GET", "/login")
    response = plain.getresponse()
    response.read()
    assert response.status == 200 and response.headers["Strict-Transport-Security"] is None
    plain.close()

    # A client that connects and never starts its handshake delays no one else.
    silent = [socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=30) for _ in range(3)]
    started = time.monotonic()
    status, _, _ = https_get("/healthz")
    assert status == 200, status
    assert time.monotonic() - started < 8, "served while silent clients wait"
    for connection in silent:
        connection.close()

    # Plain text on the TLS port is not served.
    with socket.create_connection(("127.0.0.1", HTTPS_PORT), timeout=30) as raw:
        raw.sendall(b"GET /login HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        answer = b""
        try:
            while chunk := raw.recv(4096):
                answer += chunk
        except (ConnectionResetError, socket.timeout):
            pass
        assert b"HTTP/1.1 200" not in answer and b"<form" not in answer, answer[:200]

    # The login, its Secure cookie, and the mailbox, all over HTTPS.
    client = Client()
    client.login(os.environ["USER_ADDRESS"], os.environ["PASSWORD"])
    cookie = client.session_cookie()
    assert cookie is not None and cookie.secure, cookie
    status, headers, page, url = client.request("/mail")
    assert status == 200 and url.endswith("/mail") and "INBOX" in page, (status, url)
    assert headers["Strict-Transport-Security"] == HSTS

    # curl, with OpenSSL and the certificate checked against its name.
    resolve = f"{HOSTNAME}:{HTTPS_PORT}:127.0.0.1"
    result = subprocess.run(
        ["curl", "--silent", "--show-error", "--cacert", os.environ["CERTIFICATE"],
         "--resolve", resolve, "--dump-header", "-", "--output", "/dev/null",
         f"https://{HOSTNAME}:{HTTPS_PORT}/login"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("HTTP/1.1 200"), result.stdout
    assert f"strict-transport-security: {HSTS}" in result.stdout.lower(), result.stdout
    wrong = f"wrong.{HOSTNAME}"
    result = subprocess.run(
        ["curl", "--silent", "--cacert", os.environ["CERTIFICATE"],
         "--resolve", f"{wrong}:{HTTPS_PORT}:127.0.0.1", "--output", "/dev/null",
         f"https://{wrong}:{HTTPS_PORT}/login"],
        capture_output=True, text=True, timeout=60)
    assert result.returncode == 60, (result.returncode, result.stderr)  # peer certificate
    print("https: ok")


if __name__ == "__main__":
    main()
