"""A real RFC 3161 Time-Stamping Authority on loopback: ``openssl ts -reply`` behind a tiny HTTP
server, with its own CA and a timeStamping certificate (tests only)."""

from __future__ import annotations

import datetime as dt
import http.server
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import pki

_REAL_CONNECT = socket.socket.connect  # before the unit-test network guard patches it


def allow_loopback(monkeypatch: Any) -> None:
    """Let this test reach 127.0.0.1 only (the autouse guard refuses every connection)."""

    def connect(self: socket.socket, address: Any) -> None:
        if not (isinstance(address, tuple) and address[0] in ("127.0.0.1", "localhost")):
            raise RuntimeError(f"network access in a unit test: {address}")
        _REAL_CONNECT(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)


def make_tsa(directory: Path, cn: str = "Test TSA") -> tuple[Path, Path]:
    """A TSA root CA and a timeStamping certificate under it, with the openssl ts config;
    returns (openssl config, CA PEM)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca = pki.make_ca(f"{cn} Root")
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    leaf = _tsa_cert(ca, subject)  # timeStamping as the only, critical, extended key usage
    cert, key = leaf.write(directory, "tsa")
    ca_pem = pki.write_pem(directory / "tsa-ca.pem", ca.cert)
    (directory / "serial").write_text("01\n")
    cfg = directory / "openssl-tsa.cnf"
    cfg.write_text(
        f"""[ tsa ]
default_tsa = tsa_config
[ tsa_config ]
dir = {directory}
serial = $dir/serial
crypto_device = builtin
signer_cert = {cert}
signer_key = {key}
signer_digest = sha256
default_policy = 1.3.6.1.4.1.4146.2.3
other_policies = 1.3.6.1.4.1.4146.2.2
digests = sha256, sha384, sha512
accuracy = secs:1
ordering = yes
tsa_name = yes
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""
    )
    return cfg, ca_pem


def _tsa_cert(ca: pki.Issued, subject: x509.Name) -> pki.Issued:
    from cryptography.hazmat.primitives import hashes

    key = pki.ec_key()
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(pki.key_usage(sign=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.TIME_STAMPING]), critical=True)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()),  # type: ignore[arg-type]
            critical=False,
        )
        .sign(ca.key, hashes.SHA256())  # type: ignore[arg-type]
    )
    return pki.Issued(cert, key)


@contextmanager
def serve_tsa(config: Path) -> Iterator[str]:
    """Run the TSA on 127.0.0.1 (a free port); yield its URL."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            with tempfile.TemporaryDirectory() as tmp:
                q, r = Path(tmp) / "q.tsq", Path(tmp) / "r.tsr"
                q.write_bytes(body)
                proc = subprocess.run(
                    ["openssl", "ts", "-reply", "-config", str(config), "-queryfile", str(q),
                     "-out", str(r)],
                    capture_output=True, check=False,
                )  # fmt: skip
                if proc.returncode != 0:
                    self.send_error(500, proc.stderr.decode(errors="replace")[:200])
                    return
                data = r.read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/timestamp-reply")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/tsa"
    finally:
        server.shutdown()
        server.server_close()
