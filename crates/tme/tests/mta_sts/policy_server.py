"""An HTTPS server for MTA-STS policy files (RFC 8461 §3.3), Python's own http.server.

Usage: policy_server.py CERT KEY ADDRESS PORT DIRECTORY
Serves DIRECTORY/<host>.txt as https://<host>/.well-known/mta-sts.txt (the Host header
chooses), as text/plain; anything else is 404. Prints "ready" once listening.
"""

import http.server
import os
import ssl
import sys

certificate, key, address, port, directory = sys.argv[1:6]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        host = (self.headers.get("Host") or "").split(":")[0]
        path = os.path.join(directory, host + ".txt")
        if self.path != "/.well-known/mta-sts.txt" or not os.path.exists(path):
            self.send_error(404)
            return
        body = open(path, "rb").read()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *arguments):
        sys.stderr.write("policy server: " + (format % arguments) + "\n")


server = http.server.ThreadingHTTPServer((address, int(port)), Handler)
context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
context.load_cert_chain(certificate, key)
server.socket = context.wrap_socket(server.socket, server_side=True)
print("ready", flush=True)
server.serve_forever()
