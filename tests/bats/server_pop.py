# Proof of possession (RFC 7030 3.5) from an independent TLS stack: open one
# TLS 1.2 connection with Python's ssl (OpenSSL), put its tls-unique value,
# base64, into the CSR's challengePassword (estctl mkcsr), and POST the CSR
# on that same connection. Prints the HTTP status.
import base64
import http.client
import os
import ssl
import subprocess
import sys
import tempfile

port, cafile, estctl, key, thing = sys.argv[1:6]
ctx = ssl.create_default_context(cafile=cafile)
ctx.maximum_version = ssl.TLSVersion.TLSv1_2
conn = http.client.HTTPSConnection("127.0.0.1", int(port), context=ctx)
conn.connect()
cb = conn.sock.get_channel_binding("tls-unique")
with tempfile.TemporaryDirectory() as d:
    chal = os.path.join(d, "chal")
    with open(chal, "w") as f:
        f.write(base64.b64encode(cb).decode() + "\n")
    der = subprocess.run([estctl, "mkcsr", "--key", key, "--thing", thing,
                          "--challenge-file", chal, "--der"], check=True,
                         stdout=subprocess.PIPE).stdout
auth = base64.b64encode(b"alice:pw").decode()
conn.request("POST", "/.well-known/est/pop/simpleenroll", body=base64.encodebytes(der),
             headers={"Content-Type": "application/pkcs10", "Authorization": "Basic " + auth})
print(conn.getresponse().status)
