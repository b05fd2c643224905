"""The C2PA signing credentials: production PEM files from configuration, or a development chain.

C2PA validators refuse a self-signed signing certificate, so development uses a two-level chain like
production: Kino's dev CA (a CA certificate, keyCertSign) signs a leaf with an Organization name,
digitalSignature key usage and the emailProtection extended key usage that the C2PA trust model
accepts for signers. Both keys are ECDSA P-256 (the manifest is signed ES256). The chain is generated
once, at first use, into `data_dir/provenance/` with the private keys readable by the owner only; it is
never part of the repository. Verify trusts the dev CA as its anchor unless configuration names others.
"""

from __future__ import annotations

import datetime
import fcntl
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from services.common.settings import Settings

DEV_DIR = "provenance"
CA_FILE, CA_KEY_FILE = "dev-ca.pem", "dev-ca.key"
CHAIN_FILE, KEY_FILE = "signer-chain.pem", "signer.key"
LEAF_DAYS = 365
CA_DAYS = 3650


@dataclass(frozen=True)
class SigningCredentials:
    chain_pem: str  # the signing certificate first, then its issuers
    private_key_pem: str
    trust_anchors_pem: str  # what Verify accepts as roots


def load_credentials(settings: Settings) -> SigningCredentials:
    """Production files when configured, otherwise the development chain (made on first use)."""
    config = settings.provenance
    if config.cert_chain is not None or config.private_key is not None:
        if config.cert_chain is None or config.private_key is None:
            raise ValueError("provenance.cert_chain and provenance.private_key must be set together")
        chain = config.cert_chain.read_text()
        anchors = config.trust_anchors.read_text() if config.trust_anchors else _last_certificate(chain)
        return SigningCredentials(chain, config.private_key.read_text(), anchors)
    credentials = development_credentials(settings.data_dir / DEV_DIR, config.organization)
    if config.trust_anchors is not None:
        return SigningCredentials(
            credentials.chain_pem, credentials.private_key_pem, config.trust_anchors.read_text()
        )
    return credentials


def development_credentials(directory: Path, organization: str = "Kino") -> SigningCredentials:
    """The dev CA and signer under directory, generated there the first time."""
    chain_path, key_path, ca_path = directory / CHAIN_FILE, directory / KEY_FILE, directory / CA_FILE
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / ".lock", "w") as lock:  # two processes starting together make one chain
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (chain_path.exists() and key_path.exists() and ca_path.exists()):
            _generate(directory, organization)
    return SigningCredentials(chain_path.read_text(), key_path.read_text(), ca_path.read_text())


def certificate_organization(chain_pem: str) -> str:
    """The Organization of the signing (first) certificate in a PEM chain."""
    leaf = x509.load_pem_x509_certificates(chain_pem.encode())[0]
    names = leaf.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
    return str(names[0].value) if names else ""


def _generate(directory: Path, organization: str) -> None:
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} Development CA"),
        ]
    )
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(key_cert_sign=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    leaf_key = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
                    x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Development"),
                    x509.NameAttribute(NameOID.COMMON_NAME, f"{organization} Development Signer"),
                ]
            )
        )
        .issuer_name(ca_name)
        .public_key(leaf_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(digital_signature=True), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.EMAIL_PROTECTION]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(leaf_key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    _write(directory / CA_FILE, _pem(ca))
    _write(directory / CHAIN_FILE, _pem(leaf) + _pem(ca))
    _write_private(directory / CA_KEY_FILE, ca_key)
    _write_private(directory / KEY_FILE, leaf_key)


def _key_usage(*, digital_signature: bool = False, key_cert_sign: bool = False) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=digital_signature,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=key_cert_sign,
        crl_sign=key_cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def _pem(certificate: x509.Certificate) -> str:
    return certificate.public_bytes(serialization.Encoding.PEM).decode()


def _last_certificate(chain_pem: str) -> str:
    return _pem(x509.load_pem_x509_certificates(chain_pem.encode())[-1])


def _write(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def _write_private(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    tmp.replace(path)
