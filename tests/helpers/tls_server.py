#!/usr/bin/env python3
"""A tiny HTTPS server with a given certificate, for the TLS verification tests.

usage: tls_server.py CERT KEY PORT_FILE  — answers every request 200 {"items":[]}.
"""
import http.server, os, ssl, sys


class H(http.server.BaseHTTPRequestHandler):
    def _ok(self):
        body = b'{"offset":"0","limit":"50","total_count":"0","items":[]}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _ok

    def log_message(self, *a):
        pass


srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
tmp = sys.argv[3] + ".tmp"
with open(tmp, "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(tmp, sys.argv[3])
srv.serve_forever()
