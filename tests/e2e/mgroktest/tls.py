"""Certificates for the TLS tests."""

import hashlib
import os
import re

from .checks import check, check_eq
from .env import run_recorded
from .procs import MGROKD, PLUGIN_DIR

FINGERPRINT_RE = re.compile(r"sha256:[0-9a-f]{64}")


def cert_fingerprint(path):
    """sha256:HEX of the first certificate of a PEM file, computed here
    (independently of mgrokd)."""
    import ssl  # here: only the TLS tests pay for loading it

    with open(path) as f:
        der = ssl.PEM_cert_to_DER_cert(f.read())
    return "sha256:" + hashlib.sha256(der).hexdigest()


def gen_cert(env, name, public_host=None):
    """Runs `mgrokd --gen-cert DIR [--public-host HOST]` in a new directory
    of the test; checks its output; returns (cert path, key path, fingerprint)."""
    d = os.path.join(env.dir, name)
    os.makedirs(d)
    argv = [MGROKD, "--plugin-dir", PLUGIN_DIR, "--gen-cert", d]
    if public_host:
        argv += ["--public-host", public_host]
    code, out, err = run_recorded(env, argv)
    check_eq(code, 0, "exit code of mgrokd --gen-cert", stdout=out, stderr=err)
    fps = sorted(set(FINGERPRINT_RE.findall(out + err)))
    check_eq(len(fps), 1, "distinct sha256 fingerprints printed by --gen-cert", stdout=out,
             stderr=err)
    cert, key = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
    for path in (cert, key):
        check(os.path.isfile(path), "--gen-cert did not write %s" % path, listing=os.listdir(d))
    check_eq(fps[0], cert_fingerprint(cert), "fingerprint printed by --gen-cert vs the "
             "certificate's own")
    return cert, key, fps[0]
