# Copyright: (c) 2026, wsnotify maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A summary of an X.509 certificate (subject, issuer, names, validity, fingerprint) from DER.

The standard library only decodes certificates it has verified; this small DER walk also
describes one that failed verification, which is exactly when the operator needs to see it.
Standard library only, no Ansible imports.
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress

_OID_NAMES = {
    "2.5.4.3": "CN",
    "2.5.4.6": "C",
    "2.5.4.7": "L",
    "2.5.4.8": "ST",
    "2.5.4.10": "O",
    "2.5.4.11": "OU",
    "1.2.840.113549.1.9.1": "emailAddress",
}
_OID_SAN = "2.5.29.17"


def _der_item(data: bytes, pos: int) -> tuple[int, int, int]:
    """(tag, content start, content end) of the DER element at ``pos``."""
    tag = data[pos]
    length = data[pos + 1]
    pos += 2
    if length & 0x80:
        count = length & 0x7F
        if count == 0 or count > 4:
            raise ValueError("unsupported DER length")
        length = int.from_bytes(data[pos : pos + count], "big")
        pos += count
    if pos + length > len(data):
        raise ValueError("truncated DER")
    return tag, pos, pos + length


def _der_children(data: bytes, start: int, end: int) -> list[tuple[int, int, int]]:
    items = []
    while start < end:
        item = _der_item(data, start)
        items.append(item)
        start = item[2]
    return items


def _der_oid(raw: bytes) -> str:
    parts = [raw[0] // 40, raw[0] % 40]
    value = 0
    for byte in raw[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            parts.append(value)
            value = 0
    return ".".join(str(p) for p in parts)


def _der_time(tag: int, raw: bytes) -> datetime.datetime:
    text = raw.decode("ascii")
    fmt = "%y%m%d%H%M%SZ" if tag == 0x17 else "%Y%m%d%H%M%SZ"
    return datetime.datetime.strptime(text, fmt).replace(tzinfo=datetime.UTC)


def _der_name(data: bytes, start: int, end: int) -> str:
    parts = []
    for _tag, s, e in _der_children(data, start, end):  # SET OF
        for _t2, s2, e2 in _der_children(data, s, e):  # AttributeTypeAndValue
            (_ot, os_, oe), (vt, vs, ve) = _der_children(data, s2, e2)[:2]
            oid = _der_oid(data[os_:oe])
            raw = data[vs:ve]
            value = raw.decode("utf-16-be" if vt == 0x1E else "utf-8", "replace")
            parts.append(f"{_OID_NAMES.get(oid, oid)}={value}")
    return ",".join(parts)


def _der_san(data: bytes, start: int, end: int) -> list[str]:
    names = []
    for tag, s, e in _der_children(data, start, end):
        raw = data[s:e]
        if tag == 0x82:
            names.append("DNS:" + raw.decode("ascii", "replace"))
        elif tag == 0x87 and len(raw) in (4, 16):
            names.append("IP:" + str(ipaddress.ip_address(raw)))
        elif tag == 0x81:
            names.append("email:" + raw.decode("ascii", "replace"))
        elif tag == 0x86:
            names.append("URI:" + raw.decode("ascii", "replace"))
    return names


def summarize_certificate(der: bytes, now: datetime.datetime | None = None) -> dict:
    """Subject, issuer, validity, SANs, days to expiry and SHA-256 fingerprint of a DER
    certificate; ValueError when it cannot be decoded."""
    try:
        return _summary(der, now or datetime.datetime.now(datetime.UTC))
    except IndexError as exc:  # a length pointing past the end
        raise ValueError(f"certificate could not be decoded: {exc}") from None


def _summary(der: bytes, now: datetime.datetime) -> dict:
    _t, s, e = _der_item(der, 0)
    _t, ts, te = _der_children(der, s, e)[0]  # tbsCertificate
    fields = _der_children(der, ts, te)
    if fields and fields[0][0] == 0xA0:  # explicit [0] version
        fields = fields[1:]
    _serial, _sigalg, issuer, validity, subject = fields[:5]
    (nbt, nbs, nbe), (nat, nas, nae) = _der_children(der, validity[1], validity[2])[:2]
    not_before = _der_time(nbt, der[nbs:nbe])
    not_after = _der_time(nat, der[nas:nae])
    sans: list[str] = []
    for tag, xs, xe in fields[5:]:
        if tag != 0xA3:
            continue
        (_seq, ss, se) = _der_children(der, xs, xe)[0]
        for _et, es, ee in _der_children(der, ss, se):
            parts = _der_children(der, es, ee)
            oid = _der_oid(der[parts[0][1] : parts[0][2]])
            if oid == _OID_SAN:
                _os, vs, _ve = parts[-1]  # OCTET STRING wrapping GeneralNames
                _gt, gs, ge = _der_item(der, vs)
                sans = _der_san(der, gs, ge)
    subject_text = _der_name(der, subject[1], subject[2])
    issuer_text = _der_name(der, issuer[1], issuer[2])
    return {
        "subject": subject_text,
        "issuer": issuer_text,
        "self_signed": subject_text == issuer_text,
        "subject_alt_names": sans,
        "not_before": not_before.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "not_after": not_after.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "days_to_expiry": int((not_after - now).total_seconds() // 86400),
        "sha256_fingerprint": hashlib.sha256(der).hexdigest(),
    }
