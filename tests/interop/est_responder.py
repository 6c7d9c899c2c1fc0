#!/usr/bin/env python3
"""A small RFC 7030 (EST) responder that is not estctl, for interoperability tests.

Built only on Python's standard library (http.server + ssl); every certificate,
CSR and PKCS#7 it handles goes through the openssl command line, so estctl's
client is shown to work with bytes estctl did not produce. See README.md.
"""

import argparse
import base64
import binascii
import hashlib
import http.server
import os
import secrets
import ssl
import subprocess
import sys
import tempfile
import threading

EST_PREFIX = "/.well-known/est/"
OPS = ("cacerts", "simpleenroll", "simplereenroll", "csrattrs")

# The attributes csrattrs advertises: an OID (challengePassword), an OID
# (ecdsa-with-SHA256) and an Attribute (extensionRequest asking for a
# macAddress, as in RFC 7030 A.4), as `openssl asn1parse -genconf` input.
CSRATTRS_CONF = """asn1=SEQUENCE:attrs
[attrs]
cp=OID:1.2.840.113549.1.9.7
alg=OID:1.2.840.10045.4.3.2
er=SEQUENCE:extreq
[extreq]
type=OID:1.2.840.113549.1.9.14
values=SET:extreqvals
[extreqvals]
v1=OID:1.3.6.1.1.1.1.22
"""


def openssl(*args, data=None):
    """Run openssl; return its stdout, raise RuntimeError with its stderr."""
    p = subprocess.run(("openssl",) + args, input=data, capture_output=True, check=False)
    if p.returncode != 0:
        raise RuntimeError(p.stderr.decode(errors="replace").strip().splitlines()[-1:])
    return p.stdout


def ensure_pki(d):
    """Create (once) a P-256 CA, a TLS certificate for 127.0.0.1/localhost it
    signed, and the csrattrs DER in directory D."""
    os.makedirs(d, exist_ok=True)
    p = lambda n: os.path.join(d, n)
    if not os.path.exists(p("ca.pem")):
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                "-nodes", "-keyout", p("ca.key"), "-out", p("ca.pem"), "-days", "3650",
                "-subj", "/O=est_responder/CN=est_responder test CA",
                "-addext", "basicConstraints=critical,CA:TRUE",
                "-addext", "keyUsage=critical,keyCertSign,cRLSign")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                "-keyout", p("tls.key"), "-out", p("tls.csr"), "-subj", "/CN=localhost")
        with open(p("tls.ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n"
                    "basicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        openssl("x509", "-req", "-in", p("tls.csr"), "-CA", p("ca.pem"), "-CAkey", p("ca.key"),
                "-set_serial", "0x" + secrets.token_hex(16), "-days", "3650",
                "-extfile", p("tls.ext"), "-out", p("tls.pem"))
        with open(p("client.ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n"
                    "extendedKeyUsage=clientAuth\n")
    if not os.path.exists(p("csrattrs.der")):
        with open(p("csrattrs.cnf"), "w") as f:
            f.write(CSRATTRS_CONF)
        openssl("asn1parse", "-genconf", p("csrattrs.cnf"), "-out", p("csrattrs.der"),
                "-noout")
    return p


class State:
    """Options and the per-CSR 202 counters, shared by the handler threads."""

    def __init__(self, opts, path):
        self.opts = opts
        self.path = path
        self.lock = threading.Lock()
        self.pending = {}           # sha256(CSR DER) -> times answered 202
        self.requests = []          # (method, path, content type) for the log
        with open(path("ca.pem"), "rb") as f:
            ca_pem = f.read()
        self.cacerts = openssl("crl2pkcs7", "-nocrl", "-certfile", path("ca.pem"),
                               "-outform", "DER")
        self.ca_pem = ca_pem

    def should_defer(self, der):
        if self.opts.retry_times <= 0:
            return False
        key = hashlib.sha256(der).hexdigest()
        with self.lock:
            n = self.pending.get(key, 0)
            if n < self.opts.retry_times:
                self.pending[key] = n + 1
                return True
        return False


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "est_responder/1"

    def log_message(self, fmt, *args):
        if self.server.state.opts.verbose:
            sys.stderr.write("est_responder: " + (fmt % args) + "\n")

    # Replies ------------------------------------------------------------

    def reply(self, status, ctype, body, extra=()):
        if isinstance(body, str):
            body = body.encode()
        self.send_response(status)
        if ctype:
            self.send_header("Content-Type", ctype)
        for k, v in extra:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def fail(self, status, reason, extra=()):
        self.reply(status, "text/plain", reason + "\n", extra)

    def b64(self, der):
        text = base64.b64encode(der)
        if self.server.state.opts.wrap:
            text = b"\r\n".join(text[i:i + 64] for i in range(0, len(text), 64)) + b"\r\n"
        return text

    def certs_only(self, der):
        self.reply(200, "application/pkcs7-mime; smime-type=certs-only", self.b64(der),
                   [("Content-Transfer-Encoding", "base64")])

    # Routing ------------------------------------------------------------

    def route(self):
        path = self.path.split("?", 1)[0]
        if not path.startswith(EST_PREFIX):
            return None, None
        parts = path[len(EST_PREFIX):].split("/")
        if len(parts) == 1:
            return None, parts[0]
        if len(parts) == 2 and parts[0] and all(c.isalnum() or c in "-_" for c in parts[0]):
            return parts[0], parts[1]
        return None, None

    def authorized(self):
        o = self.server.state.opts
        if not o.user:
            return True
        want = base64.b64encode(("%s:%s" % (o.user, o.password)).encode()).decode()
        got = self.headers.get("Authorization", "")
        if got.startswith("Basic ") and secrets.compare_digest(got[6:].strip(), want):
            return True
        self.fail(401, "wrong user name or password",
                  [("WWW-Authenticate", 'Basic realm="estctl interop"')])
        return False

    def do_GET(self):
        st = self.server.state
        if st.opts.fail_status:
            return self.fail(st.opts.fail_status, "responder told to fail")
        _label, op = self.route()
        if op == "cacerts":
            return self.certs_only(st.cacerts)
        if op == "csrattrs":
            with open(st.path("csrattrs.der"), "rb") as f:
                der = f.read()
            return self.reply(200, "application/csrattrs", self.b64(der))
        if op in OPS:
            return self.fail(405, "use POST for " + op, [("Allow", "POST")])
        return self.fail(404, "no such EST operation")

    def do_POST(self):
        st = self.server.state
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        if st.opts.fail_status:
            return self.fail(st.opts.fail_status, "responder told to fail")
        _label, op = self.route()
        if op not in ("simpleenroll", "simplereenroll"):
            return self.fail(404 if op not in OPS else 405, "no such EST operation")
        if op == "simplereenroll" and not self.connection.getpeercert():
            return self.fail(403, "re-enrollment needs the current client certificate")
        if op == "simpleenroll" and not self.client_cert_ok() and not self.authorized():
            return
        try:
            der = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            return self.fail(400, "body is not base64")
        ctype = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        smime = self.headers.get("Content-Type", "").lower().replace(" ", "")
        if ctype == "application/pkcs7-mime" and "smime-type=authenveloped-data" in smime:
            der = self.unseal(der)
            if der is None:
                return
        elif ctype != "application/pkcs10":
            return self.fail(415, "expected application/pkcs10")
        if st.should_defer(der):
            return self.reply(202, "text/plain", "pending\n",
                              [("Retry-After", str(st.opts.retry_after))])
        self.sign(der)

    def client_cert_ok(self):
        # A TLS client certificate from our CA is enough for simpleenroll too
        # (RFC 7030 3.3.2); without --user no credential is asked for.
        return bool(self.server.state.opts.user) and bool(self.connection.getpeercert())

    def unseal(self, der):
        o = self.server.state.opts
        if not o.enrollment_key:
            self.fail(415, "sealed CSRs are not accepted here")
            return None
        try:
            return openssl("cms", "-decrypt", "-binary", "-inform", "DER", "-secretkey",
                           o.enrollment_key, "-secretkeyid", o.key_id.encode().hex(),
                           data=der)
        except RuntimeError:
            self.fail(403, "the sealed CSR does not open under the enrollment key")
            return None

    def sign(self, csr_der):
        st = self.server.state
        with tempfile.TemporaryDirectory() as t:
            csr = os.path.join(t, "csr.der")
            with open(csr, "wb") as f:
                f.write(csr_der)
            try:
                subj = openssl("req", "-inform", "DER", "-in", csr, "-verify", "-noout",
                               "-subject", "-nameopt", "RFC2253").decode()
                if any(subj.strip() == "subject=CN=" + cn for cn in st.opts.refuse_cn):
                    return self.fail(403, "policy: this device may not enroll here")
                pem = openssl("x509", "-req", "-inform", "DER", "-in", csr,
                              "-CA", st.path("ca.pem"), "-CAkey", st.path("ca.key"),
                              "-set_serial", "0x" + secrets.token_hex(16),
                              "-days", str(st.opts.days), "-copy_extensions",
                              "none" if st.opts.no_copy_extensions else "copyall",
                              "-extfile", st.path("client.ext"))
            except RuntimeError as err:
                return self.fail(400, "bad CSR: %s" % err)
            crt = os.path.join(t, "crt.pem")
            with open(crt, "wb") as f:
                f.write(pem)
            p7 = openssl("crl2pkcs7", "-nocrl", "-certfile", crt, "-outform", "DER")
        self.certs_only(p7)


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the connection's own thread, so one slow
        # or failing client never holds up accept().
        try:
            request = self.tls.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as err:
            if self.state.opts.verbose:
                sys.stderr.write("est_responder: handshake: %s\n" % err)
            return
        super().finish_request(request, client_address)

    def handle_error(self, request, client_address):
        if self.state.opts.verbose:
            super().handle_error(request, client_address)


def parse_args(argv):
    a = argparse.ArgumentParser(description="RFC 7030 responder for interop tests")
    a.add_argument("--dir", required=True, help="state directory (CA, TLS cert)")
    a.add_argument("--port", type=int, default=0, help="0: pick one, print it first")
    a.add_argument("--wrap", dest="wrap", action="store_true", default=True,
                   help="base64 bodies in 64-character lines (default)")
    a.add_argument("--no-wrap", dest="wrap", action="store_false",
                   help="base64 bodies on one line")
    a.add_argument("--retry-times", type=int, default=0,
                   help="answer 202 this many times per CSR before signing it")
    a.add_argument("--retry-after", type=int, default=1, help="Retry-After seconds")
    a.add_argument("--user", help="require HTTP Basic with this user")
    a.add_argument("--password-file", help="the password for --user")
    a.add_argument("--enrollment-key", help="64 hex: accept CSRs sealed under it")
    a.add_argument("--key-id", default="fleet-key-1", help="the enrollment key's id")
    a.add_argument("--fail-status", type=int, default=0, help="answer every request so")
    a.add_argument("--no-copy-extensions", action="store_true",
                   help="do not copy the CSR's extensions into certificates")
    a.add_argument("--refuse-cn", action="append", default=[],
                   help="answer 403 to CSRs for this CN (repeatable)")
    a.add_argument("--days", type=int, default=30, help="validity of issued certificates")
    a.add_argument("-v", "--verbose", action="store_true", help="log requests on stderr")
    o = a.parse_args(argv)
    o.password = None
    if o.user:
        if not o.password_file:
            a.error("--user needs --password-file")
        with open(o.password_file) as f:
            o.password = f.read().rstrip("\r\n")
    if o.enrollment_key and os.path.exists(o.enrollment_key):
        with open(o.enrollment_key) as f:
            o.enrollment_key = f.read().strip()
    return o


def main(argv):
    o = parse_args(argv)
    path = ensure_pki(o.dir)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(path("tls.pem"), path("tls.key"))
    ctx.load_verify_locations(path("ca.pem"))
    ctx.verify_mode = ssl.CERT_OPTIONAL   # simplereenroll checks that one was sent
    srv = Server(("127.0.0.1", o.port), Handler)
    srv.tls = ctx
    srv.state = State(o, path)
    print(srv.server_address[1], flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
