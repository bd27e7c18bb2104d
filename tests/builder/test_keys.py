"""genkey and the choice of the signing key pair."""

from __future__ import annotations

import stat

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from mvirt_build.errors import BuildError
from mvirt_build.keys import generate_keys, resolve_signing


def test_genkey_writes_matching_key_and_certificate(tmp_path):
    out = generate_keys(tmp_path / "keys", common_name="test SB")
    key = load_pem_private_key(out.key.read_bytes(), None)
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size >= 2048
    pem = x509.load_pem_x509_certificate(out.cert.read_bytes())
    der = x509.load_der_x509_certificate(out.cert_der.read_bytes())
    assert pem == der
    public = pem.public_key()
    assert isinstance(public, rsa.RSAPublicKey)
    assert public.public_numbers() == key.public_key().public_numbers()
    assert pem.subject == pem.issuer  # self-signed
    assert "test SB" in pem.subject.rfc4514_string()
    assert stat.S_IMODE(out.key.stat().st_mode) == 0o600


def test_genkey_refuses_to_overwrite_without_force(tmp_path):
    first = generate_keys(tmp_path)
    before = first.key.read_bytes()
    with pytest.raises(BuildError, match="already exist"):
        generate_keys(tmp_path)
    assert first.key.read_bytes() == before
    generate_keys(tmp_path, force=True)
    assert first.key.read_bytes() != before


def test_small_keys_are_refused(tmp_path):
    with pytest.raises(BuildError, match="2048"):
        generate_keys(tmp_path, bits=1024)


def test_no_key_anywhere_means_unsigned(tmp_path):
    cfg = resolve_signing(tmp_path)
    assert not cfg.enabled
    assert cfg.origin == "no key configured"


def test_genkey_output_is_picked_up_by_default(tmp_path):
    generate_keys(tmp_path / "keys")
    cfg = resolve_signing(tmp_path)
    assert cfg.enabled
    assert cfg.key == tmp_path / "keys/mvirt.key"


def test_mkosi_conf_validation_section_configures_the_pair(tmp_path):
    out = generate_keys(tmp_path / "elsewhere")
    (tmp_path / "mkosi.conf").write_text(
        "[Distribution]\nDistribution=debian\n\n[Validation]\n"
        "SecureBootKey=elsewhere/mvirt.key\nSecureBootCertificate=elsewhere/mvirt.crt\n"
    )
    cfg = resolve_signing(tmp_path)
    assert (cfg.key, cfg.cert) == (out.key, out.cert)
    assert "SecureBootKey=" in cfg.origin


def test_mkosi_defaults_and_drop_ins_configure_the_pair(tmp_path, monkeypatch):
    """As mkosi itself: mkosi.key/mkosi.crt next to mkosi.conf, or a drop-in naming a pair."""
    monkeypatch.setenv("MVIRT_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "mkosi.conf").write_text("[Distribution]\nDistribution=debian\n")
    out = generate_keys(tmp_path / "gen")
    (tmp_path / "mkosi.key").write_bytes(out.key.read_bytes())
    (tmp_path / "mkosi.key").chmod(0o600)  # mkosi refuses a secret others can read
    (tmp_path / "mkosi.crt").write_bytes(out.cert.read_bytes())
    cfg = resolve_signing(tmp_path)
    assert (cfg.key, cfg.cert) == (tmp_path / "mkosi.key", tmp_path / "mkosi.crt")
    other = generate_keys(tmp_path / "other")
    (tmp_path / "mkosi.conf.d").mkdir()
    (tmp_path / "mkosi.conf.d/signing.conf").write_text(
        "[Validation]\nSecureBootKey=other/mvirt.key\nSecureBootCertificate=other/mvirt.crt\n"
    )
    assert resolve_signing(tmp_path).key == other.key


def test_command_line_wins_over_mkosi_conf(tmp_path):
    generate_keys(tmp_path / "a")
    cli = generate_keys(tmp_path / "b")
    (tmp_path / "mkosi.conf").write_text(
        "[Validation]\nSecureBootKey=a/mvirt.key\nSecureBootCertificate=a/mvirt.crt\n"
    )
    cfg = resolve_signing(tmp_path, cli.key, cli.cert)
    assert cfg.key == cli.key


def test_configured_but_missing_key_is_an_error_not_an_unsigned_build(tmp_path):
    (tmp_path / "mkosi.conf").write_text(
        "[Validation]\nSecureBootKey=keys/gone.key\nSecureBootCertificate=keys/gone.crt\n"
    )
    with pytest.raises(BuildError, match="does not exist"):
        resolve_signing(tmp_path)


def test_half_a_pair_is_an_error(tmp_path):
    out = generate_keys(tmp_path)
    with pytest.raises(BuildError, match="both a key and a certificate"):
        resolve_signing(tmp_path, out.key, None)
