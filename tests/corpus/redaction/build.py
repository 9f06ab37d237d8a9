# ruff: noqa: E501  (a data generator: its templates read best on one line each)
"""Builds the labelled redaction corpus, `samples.jsonl`, deterministically (fixed seed).

    uv run python tests/corpus/redaction/build.py      # rewrites samples.jsonl next to it

Each line: {"text": ..., "spans": [[start, end, type], ...], "format": ..., "kind": ...}
(kind "positive" or "negative"). Every value is valid by construction and made up: card
numbers get a real issuer prefix and Luhn digit, IBANs the mod-97 check digits of their
country's length, SSNs a valid area/group/serial, phone numbers are `phonenumbers` example
numbers (and neighbours of them that it calls valid); tokens are random strings in each
issuer's format. No real person's data. The span of a secret behind a key or a header is the
value only (what the engine masks). `mixed_text(size)` is the bench's throughput load: logs,
JSON API responses, code and prose with about one entity per KB.
"""

from __future__ import annotations

import base64
import hashlib
import json
import random
import string
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import phonenumbers
from phonenumbers import PhoneNumberFormat, PhoneNumberType

HERE = Path(__file__).resolve().parent
SEED = 11
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"


class Ent:
    """A labelled value inside a template."""

    def __init__(self, value: str, type_: str) -> None:
        self.value, self.type = value, type_


Part = str | Ent


def assemble(parts: list[Part]) -> tuple[str, list[list[Any]]]:
    text, spans = "", []
    for p in parts:
        if isinstance(p, Ent):
            spans.append([len(text), len(text) + len(p.value), p.type])
            text += p.value
        else:
            text += p
    return text, spans


def jpart(parts: list[Part]) -> list[Part]:
    """The parts of a JSON string literal (quotes included) holding `parts`."""
    out: list[Part] = ['"']
    for p in parts:
        enc = json.dumps(p.value if isinstance(p, Ent) else p, ensure_ascii=False)[1:-1]
        out.append(Ent(enc, p.type) if isinstance(p, Ent) else enc)
    out.append('"')
    return out


def jdump(obj: Any, indent: int | None = None, level: int = 0) -> list[Part]:
    """JSON text of `obj` as parts; a string value may be an Ent or a list of parts."""
    nl = "" if indent is None else "\n" + " " * (indent * (level + 1))
    end = "" if indent is None else "\n" + " " * (indent * level)
    sep = ", " if indent is None else ","
    if isinstance(obj, dict):
        out: list[Part] = ["{"]
        for i, (k, val) in enumerate(obj.items()):
            out += [sep if i else "", nl, json.dumps(k), ": ", *jdump(val, indent, level + 1)]
        return [*out, end, "}"] if obj else ["{}"]
    if isinstance(obj, list):
        out = ["["]
        for i, val in enumerate(obj):
            out += [sep if i else "", nl, *jdump(val, indent, level + 1)]
        return [*out, end, "]"] if obj else ["[]"]
    if isinstance(obj, Ent):
        return jpart([obj])
    if isinstance(obj, Parts):
        return jpart(list(obj.parts))
    return [json.dumps(obj, ensure_ascii=False)]


class Parts:
    """A JSON string value made of text and entities."""

    def __init__(self, *parts: Part) -> None:
        self.parts = parts


# --- valid-by-construction values -------------------------------------------------------------


class Gen:
    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def s(self, n: int, alphabet: str = ALNUM) -> str:
        return "".join(self.r.choice(alphabet) for _ in range(n))

    def pick(self, seq: list[Any] | tuple[Any, ...]) -> Any:
        return self.r.choice(seq)

    # financial / national
    def card(self) -> str:
        prefix, length = self.pick(
            [
                ("4", 16),
                ("4", 13),
                ("51", 16),
                ("55", 16),
                ("2221", 16),
                ("2720", 16),
                ("34", 15),
                ("37", 15),
                ("6011", 16),
                ("65", 16),
                ("3528", 16),
                ("3589", 16),
                ("36", 14),
                ("300", 14),
                ("62", 16),
                ("4", 19),
            ]
        )
        body = prefix + self.s(length - len(prefix) - 1, string.digits)
        digits = body + str(luhn_digit(body))
        style = self.r.randrange(3)
        if style == 0 or length not in (15, 16):
            return digits
        sep = self.pick([" ", "-"])
        if length == 15:
            return sep.join((digits[:4], digits[4:10], digits[10:]))
        return sep.join(digits[i : i + 4] for i in range(0, 16, 4))

    def bad_card(self) -> str:
        """A card-shaped run whose Luhn digit is off by one."""
        while True:
            c = self.card().replace(" ", "").replace("-", "")
            bad = c[:-1] + str((int(c[-1]) + 1) % 10)
            return bad

    IBAN_FORMATS = {  # country: (bank/branch/account layout as n=digit, a=upper, c=alnum)
        "DE": "n" * 18,
        "GB": "aaaa" + "n" * 14,
        "FR": "n" * 10 + "c" * 11 + "nn",
        "ES": "n" * 20,
        "NL": "aaaa" + "n" * 10,
        "IT": "a" + "n" * 10 + "c" * 12,
        "BE": "n" * 12,
        "CH": "n" * 5 + "c" * 12,
        "PL": "n" * 24,
        "AT": "n" * 16,
    }

    def iban(self, grouped: bool | None = None) -> str:
        cc = self.pick(list(self.IBAN_FORMATS))
        alpha = {"n": string.digits, "a": string.ascii_uppercase, "c": string.digits + "ABCDEF"}
        bban = "".join(self.r.choice(alpha[k]) for k in self.IBAN_FORMATS[cc])
        rearranged = bban + cc + "00"
        check = 98 - int("".join(str(int(c, 36)) for c in rearranged)) % 97
        value = f"{cc}{check:02d}{bban}"
        if grouped if grouped is not None else self.r.random() < 0.5:
            value = " ".join(value[i : i + 4] for i in range(0, len(value), 4))
        return value

    def bad_iban(self) -> str:
        v = self.iban(grouped=False)
        return v[:2] + f"{(int(v[2:4]) + 1) % 100:02d}" + v[4:]

    def ssn(self) -> str:
        area = self.pick([a for a in range(1, 900) if a != 666])
        return f"{area:03d}-{self.r.randint(1, 99):02d}-{self.r.randint(1, 9999):04d}"

    def bad_ssn(self) -> str:
        return self.pick(
            [
                f"000-{self.r.randint(1, 99):02d}-{self.r.randint(1, 9999):04d}",
                f"666-{self.r.randint(1, 99):02d}-{self.r.randint(1, 9999):04d}",
                f"9{self.r.randint(0, 99):02d}-{self.r.randint(1, 99):02d}-{self.r.randint(1, 9999):04d}",
                f"{self.r.randint(1, 665):03d}-00-{self.r.randint(1, 9999):04d}",
                f"{self.r.randint(1, 665):03d}-{self.r.randint(1, 99):02d}-0000",
            ]
        )

    # contact
    FIRST = ["ana", "ben", "chloe", "dmitri", "elif", "farah", "gus", "hana", "ivo", "jun", "kemal"]
    LAST = ["ortiz", "nguyen", "schmidt", "okafor", "rossi", "tanaka", "moreau", "silva", "kowal"]
    DOMAINS = [
        "northwind-mail.io",
        "acmecorp.co.uk",
        "fabrikam.de",
        "contoso-hq.com",
        "tailspin.fr",
        "globex.net",
        "initech.io",
        "umbrella-labs.org",
        "hooli.dev",
    ]

    def email(self) -> str:
        f, last = self.pick(self.FIRST), self.pick(self.LAST)
        local = self.pick(
            [f"{f}.{last}", f"{f[0]}{last}", f"{f}+billing", f"{last}{self.r.randint(1, 99)}"]
        )
        return f"{local}@{self.pick(self.DOMAINS)}"

    REGIONS = ["US", "GB", "DE", "FR", "JP", "IN", "BR", "AU", "ES", "IT", "CA", "MX", "NL", "CH"]

    def phone(self) -> str:
        region = self.pick(self.REGIONS)
        kind = self.pick([PhoneNumberType.MOBILE, PhoneNumberType.FIXED_LINE])
        example = phonenumbers.example_number_for_type(region, kind)
        assert example is not None
        nsn = str(example.national_number)
        for _ in range(50):  # a neighbour of the example number that is still valid
            cand = nsn[:-3] + self.s(3, string.digits)
            num = phonenumbers.parse(f"+{example.country_code}{cand}")
            if phonenumbers.is_valid_number(num):
                break
        else:
            num = example
        if region in ("US", "CA") and self.r.random() < 0.6:
            fmt = self.pick(["national", "dashes", "dots"])
            national = phonenumbers.format_number(num, PhoneNumberFormat.NATIONAL)
            d = str(num.national_number)
            return {
                "national": national,
                "dashes": f"{d[:3]}-{d[3:6]}-{d[6:]}",
                "dots": f"{d[:3]}.{d[3:6]}.{d[6:]}",
            }[fmt]
        fmt = self.pick([PhoneNumberFormat.INTERNATIONAL, PhoneNumberFormat.E164])
        return phonenumbers.format_number(num, fmt)

    def ipv4(self) -> str:
        while True:
            a = self.r.randint(1, 223)
            if a in (127, 192, 198, 203, 0):
                continue
            return f"{a}.{self.r.randint(0, 255)}.{self.r.randint(0, 255)}.{self.r.randint(1, 254)}"

    def ipv6(self) -> str:
        groups = [self.pick(["2a00", "2600", "2a03", "2607", "2001:4860", "fd12"])]
        groups += [f"{self.r.randint(1, 0xFFFF):x}" for _ in range(self.r.randint(2, 3))]
        tail = [f"{self.r.randint(1, 0xFFFF):x}" for _ in range(self.r.randint(1, 2))]
        return ":".join(groups) + "::" + ":".join(tail)

    # secrets
    def aws_id(self) -> str:
        return self.pick(["AKIA", "ASIA"]) + self.s(16, string.ascii_uppercase + "234567")

    def aws_secret(self) -> str:
        return self.s(40, B64)

    def github(self) -> str:
        if self.r.random() < 0.2:
            return "github_pat_" + self.s(22) + "_" + self.s(59)
        return "gh" + self.pick("pousr") + "_" + self.s(36)

    def gitlab(self) -> str:
        return self.pick(["glpat-", "gldt-", "glrt-"]) + self.s(20, ALNUM + "_-")

    def slack(self) -> str:
        if self.r.random() < 0.2:
            return f"https://hooks.slack.com/services/T{self.s(8, string.ascii_uppercase + string.digits)}/B{self.s(8, string.ascii_uppercase + string.digits)}/{self.s(24)}"
        return f"xox{self.pick('bpa')}-{self.s(12, string.digits)}-{self.s(12, string.digits)}-{self.s(24)}"

    def stripe(self) -> str:
        return self.pick(["sk_live_", "sk_test_", "rk_live_", "whsec_"]) + self.s(
            self.r.randint(24, 32)
        )

    def openai(self) -> str:
        if self.r.random() < 0.5:
            return "sk-proj-" + self.s(40, ALNUM + "_-") + self.s(2)
        return "sk-" + self.s(20) + "T3BlbkFJ" + self.s(20)

    def anthropic(self) -> str:
        return "sk-ant-api03-" + self.s(93, ALNUM + "_-") + "AA"

    def google(self) -> str:
        return "AIza" + self.s(35, ALNUM + "_-").replace("-", "x")

    def npm(self) -> str:
        return "npm_" + self.s(36)

    def sendgrid(self) -> str:
        return "SG." + self.s(22, ALNUM + "_-") + "." + self.s(43, ALNUM + "_-")

    def jwt(self) -> str:
        def b64(obj: dict[str, Any]) -> str:
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

        head = b64({"alg": self.pick(["HS256", "RS256"]), "typ": "JWT"})
        body = b64(
            {"sub": str(self.r.randint(1, 10**9)), "iat": 1700000000 + self.r.randint(0, 10**7)}
        )
        return f"{head}.{body}.{self.s(43, ALNUM + '_-')}"

    def bearer(self) -> str:
        return self.s(self.r.randint(24, 48), ALNUM + "._-")

    def password(self) -> str:
        return self.pick(
            [
                self.s(4, string.ascii_lowercase)
                + self.s(2, string.digits)
                + self.pick("!@#$%")
                + self.s(4),
                "hunter" + self.s(2, string.digits),
                "P@ss" + self.s(6) + "!",
                "s3cr3t-" + self.s(8, string.ascii_lowercase),
                self.s(16, ALNUM),
            ]
        )

    def url_password(self) -> str:
        """A password as it appears in a URL: no `@`, `:`, `/` or `#` (those are escaped)."""
        return self.pick(
            [
                self.s(12),
                "hunter" + self.s(2, string.digits),
                "s3cr3t-" + self.s(6),
                "P%40ss" + self.s(6),
                self.s(6, string.ascii_lowercase) + "!" + self.s(4),
            ]
        )

    def pem(self, escaped: bool = False) -> str:
        kind = self.pick(
            ["RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY"]
        )
        body = "\n".join(self.s(64, B64) for _ in range(self.r.randint(3, 8)))
        return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"

    # hard negatives
    def sha1(self) -> str:
        return hashlib.sha1(self.s(12).encode()).hexdigest()

    def sha256(self) -> str:
        return hashlib.sha256(self.s(12).encode()).hexdigest()

    def sri(self) -> str:
        return "sha384-" + base64.b64encode(hashlib.sha384(self.s(9).encode()).digest()).decode()

    def uuid(self) -> str:
        return str(uuid.UUID(int=self.r.getrandbits(128), version=4))

    def epoch_ms(self) -> str:
        return str(1_600_000_000_000 + self.r.randint(0, 10**11))

    def version(self) -> str:
        return ".".join(str(self.r.randint(0, 30)) for _ in range(self.r.randint(3, 4)))

    def mac(self) -> str:
        return ":".join(f"{self.r.randint(0, 255):02x}" for _ in range(6))

    def order(self) -> str:
        return self.pick(
            [
                f"ORD-{self.r.randint(10**6, 10**7)}",
                str(self.r.randint(10**9, 10**10)),
                f"#{self.r.randint(10**5, 10**8)}",
            ]
        )

    def b64img(self) -> str:
        return "data:image/png;base64,iVBORw0KGgo" + self.s(self.r.randint(60, 200), B64) + "=="

    def pubkey(self) -> str:
        kind = self.pick(["PUBLIC KEY", "CERTIFICATE", "RSA PUBLIC KEY"])
        body = "\n".join(self.s(64, B64) for _ in range(3))
        return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----"


def luhn_digit(body: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(body)):
        d = int(ch)
        if i % 2 == 0:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return (10 - total % 10) % 10


# --- templates --------------------------------------------------------------------------------

Sample = dict[str, Any]
Template = Callable[[Gen, Ent], tuple[list[Part], str]]


def ts(g: Gen) -> str:
    return f"2026-{g.r.randint(1, 12):02d}-{g.r.randint(1, 28):02d}T{g.r.randint(0, 23):02d}:{g.r.randint(0, 59):02d}:{g.r.randint(0, 59):02d}.{g.r.randint(0, 999):03d}Z"


def noise(g: Gen) -> str:
    """A hard negative, in words around it."""
    return g.pick(
        [
            f"request_id={g.uuid()}",
            f"commit {g.sha1()}",
            f"digest sha256:{g.sha256()}",
            f"ts={g.epoch_ms()}",
            f"version {g.version()}",
            f"order {g.order()}",
            f"lodash@4.17.{g.r.randint(0, 21)}",
            "logo@2x.png",
            f"mac {g.mac()}",
            f"integrity {g.sri()}",
            "card ****" + g.s(4, string.digits),
            f"build {g.r.randint(1000, 99999)}",
            f"elapsed {g.r.randint(1, 9999)}ms",
            f"from 127.0.0.1:{g.r.randint(1024, 65535)}",
            f"{g.r.randint(1, 500)} items",
        ]
    )


def t_log(g: Gen, e: Ent) -> tuple[list[Part], str]:
    lvl = g.pick(["INFO", "WARN", "DEBUG", "ERROR"])
    svc = g.pick(["api", "billing", "auth", "worker", "gateway"])
    lead = {
        "CARD": "charge card=",
        "IBAN": "payout iban=",
        "SSN": "kyc ssn=",
        "EMAIL": "user=",
        "PHONE": "sms sent to phone ",
        "IP": "client_ip=",
        "AUTH_HEADER": "",
        "SECRET_VALUE": "",
        "URL_PASSWORD": "",
    }.get(e.type, "loaded credential ")
    if e.type == "AUTH_HEADER":
        return [
            f"{ts(g)} {lvl} {svc} outgoing headers: Authorization: Bearer ",
            e,
            f" {noise(g)}\n",
        ], "log"
    if e.type == "SECRET_VALUE":
        return [f"{ts(g)} {lvl} {svc} config api_key=", e, f" {noise(g)}\n"], "log"
    if e.type == "URL_PASSWORD":
        return [
            f"{ts(g)} {lvl} {svc} connecting to postgres://app_user:",
            e,
            f"@db-{g.r.randint(1, 9)}.internal:5432/app {noise(g)}\n",
        ], "log"
    if e.type == "AWS_SECRET_KEY":
        return [f"{ts(g)} {lvl} {svc} env AWS_SECRET_ACCESS_KEY=", e, f" {noise(g)}\n"], "log"
    if e.type == "PRIVATE_KEY":
        return [
            f"{ts(g)} {lvl} {svc} loaded key:\n",
            e,
            f"\n{ts(g)} {lvl} {svc} {noise(g)}\n",
        ], "log"
    return [f"{ts(g)} {lvl} {svc} {noise(g)} {lead}", e, f" {noise(g)} status=200\n"], "log"


ENV_KEYS = {
    "AWS_ACCESS_KEY": "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_KEY": "AWS_SECRET_ACCESS_KEY",
    "GITHUB_TOKEN": "GH_PAT",
    "GITLAB_TOKEN": "CI_DEPLOY",
    "SLACK_TOKEN": "SLACK_BOT",
    "STRIPE_KEY": "STRIPE",
    "OPENAI_KEY": "OPENAI",
    "ANTHROPIC_KEY": "CLAUDE",
    "GOOGLE_API_KEY": "MAPS",
    "NPM_TOKEN": "NPM_AUTH",
    "SENDGRID_KEY": "MAILER",
    "JWT": "SESSION_JWT",
    "EMAIL": "ADMIN_EMAIL",
    "PHONE": "SUPPORT_PHONE",
    "IP": "DB_HOST",
    "CARD": "TEST_CARD",
    "IBAN": "PAYOUT_IBAN",
    "SSN": "OWNER_SSN",
}


def t_env(g: Gen, e: Ent) -> tuple[list[Part], str]:
    head = f"# generated {ts(g)}\nNODE_ENV=production\nPORT={g.r.randint(3000, 9000)}\nAPP_VERSION={g.version()}\n"
    if e.type == "SECRET_VALUE":
        return [head, "DATABASE_PASSWORD=", e, f"\nLOG_LEVEL=info\nRELEASE_SHA={g.sha1()}\n"], "env"
    if e.type == "URL_PASSWORD":
        return [
            head,
            "REDIS_URL=redis://default:",
            e,
            "@cache.internal:6379/0\nLOG_LEVEL=info\n",
        ], "env"
    if e.type == "AUTH_HEADER":
        return [head, 'EXTRA_HEADERS="Authorization: Bearer ', e, '"\nLOG_LEVEL=info\n'], "env"
    if e.type == "PRIVATE_KEY":
        return [head, 'SIGNING_KEY="', e, f'"\nBUILD={g.epoch_ms()}\n'], "env"
    return [head, f"{ENV_KEYS[e.type]}=", e, f"\nLOG_LEVEL=info\nRELEASE_SHA={g.sha1()}\n"], "env"


JSON_KEYS = {
    "CARD": "card_number",
    "IBAN": "iban",
    "SSN": "tax_id",
    "EMAIL": "email",
    "PHONE": "phone",
    "IP": "last_login_ip",
    "AWS_ACCESS_KEY": "access_key_id",
    "JWT": "id_token",
}


def t_json(g: Gen, e: Ent) -> tuple[list[Part], str]:
    key = JSON_KEYS.get(e.type, "note")
    if e.type == "SECRET_VALUE":
        key = g.pick(["client_secret", "password", "api_key", "refresh_token"])
    value: Any = e
    if e.type == "AUTH_HEADER":
        key, value = (
            "curl",
            Parts("curl -H 'Authorization: Bearer ", e, "' https://api.internal/v1"),
        )
    elif e.type == "URL_PASSWORD":
        key, value = "dsn", Parts("mysql://svc:", e, "@10.0.0.5:3306/app")
    elif e.type == "AWS_SECRET_KEY":
        key = "aws_secret_access_key"
    elif key == "note":
        value = Parts("the integration uses ", e, " for now")
    obj = {
        "id": g.uuid(),
        "object": g.pick(["customer", "event", "tool_result"]),
        "created": int(g.epoch_ms()) // 1000,
        "version": g.version(),
        "data": {
            key: value,
            "status": g.pick(["active", "pending"]),
            "etag": g.sha256()[:32],
            "avatar": "https://cdn.acme.io/img/logo@2x.png",
            "items": [g.r.randint(1, 99) for _ in range(3)],
        },
    }
    return jdump(obj, indent=g.pick([None, 2])), "json"


def t_stack(g: Gen, e: Ent) -> tuple[list[Part], str]:
    frames = "".join(
        f'  File "/srv/app/{g.pick(["api", "db", "jobs"])}/{g.s(6, string.ascii_lowercase)}.py", line {g.r.randint(1, 900)}, in {g.s(7, string.ascii_lowercase)}\n'
        for _ in range(3)
    )
    return [
        "Traceback (most recent call last):\n",
        frames,
        "ValueError: rejected value ",
        e,
        f" (trace {g.uuid()})\n",
    ], "stacktrace"


def t_curl(g: Gen, e: Ent) -> tuple[list[Part], str]:
    if e.type == "AUTH_HEADER":
        return [
            "curl -sS -X POST https://api.northwind.io/v2/charges \\\n  -H 'Authorization: Bearer ",
            e,
            f"' \\\n  -H 'Content-Type: application/json' -d '{{\"amount\": {g.r.randint(1, 9999)}}}'\n",
        ], "curl"
    if e.type == "URL_PASSWORD":
        return ["curl -u x https://deploy:", e, "@registry.internal/v2/_catalog\n"], "curl"
    if e.type == "SECRET_VALUE":
        return ["curl -H 'X-Api-Key: ", e, "' https://api.globex.net/v1/items?limit=50\n"], "curl"
    if e.type == "AWS_SECRET_KEY":
        return ["curl https://sts.internal/assume -d 'aws_secret_access_key=", e, "'\n"], "curl"
    return [f"curl -s 'https://api.acme.io/v1/search?ref={g.sha1()[:12]}' -d 'q=", e, "'\n"], "curl"


def t_email(g: Gen, e: Ent) -> tuple[list[Part], str]:
    return [
        "From: Support <",
        Ent(f"support@{g.pick(Gen.DOMAINS)}", "EMAIL"),
        f">\nTo: billing team\nSubject: Re: ticket #{g.r.randint(10000, 99999)}\n"
        f"Date: Mon, 7 Dec 2026 10:{g.r.randint(10, 59)}:00 +0000\n\nHi,\n\nthe customer confirmed the value is ",
        e,
        f". Please update the record (order {g.order()}).\n\nThanks,\n{g.pick(Gen.FIRST).title()}\n",
    ], "email"


def t_yaml(g: Gen, e: Ent) -> tuple[list[Part], str]:
    key = {"SECRET_VALUE": "password", "AWS_SECRET_KEY": "aws_secret_access_key"}.get(
        e.type, "value"
    )
    if e.type == "AUTH_HEADER":
        return [
            "headers:\n  Authorization: Bearer ",
            e,
            f"\nimage: nginx@sha256:{g.sha256()}\n",
        ], "yaml"
    if e.type == "URL_PASSWORD":
        return [
            "database:\n  url: postgresql://app:",
            e,
            f"@pg.internal/app\n  pool: {g.r.randint(2, 20)}\n",
        ], "yaml"
    return [
        f"service:\n  image: nginx@sha256:{g.sha256()}\n  version: {g.version()}\n  {key}: ",
        e,
        f"\n  replicas: {g.r.randint(1, 5)}\n",
    ], "yaml"


def t_csv(g: Gen, e: Ent) -> tuple[list[Part], str]:
    return [
        f"id,created,name,value,order\n{g.r.randint(1, 999)},{ts(g)},{g.pick(Gen.FIRST)},",
        e,
        f",{g.order()}\n{g.r.randint(1, 999)},{ts(g)},{g.pick(Gen.FIRST)},n/a,{g.order()}\n",
    ], "csv"


TEMPLATES: tuple[Template, ...] = (t_log, t_env, t_json, t_stack, t_curl, t_email, t_yaml, t_csv)
# Templates that name a key themselves for these types (the value is only a secret in context).
KEYED = {"SECRET_VALUE", "AWS_SECRET_KEY", "AUTH_HEADER", "URL_PASSWORD"}
KEYED_TEMPLATES: tuple[Template, ...] = (t_log, t_env, t_json, t_curl, t_yaml)


def value_of(g: Gen, type_: str) -> str:
    return {
        "CARD": g.card,
        "IBAN": g.iban,
        "SSN": g.ssn,
        "EMAIL": g.email,
        "PHONE": g.phone,
        "IP": lambda: g.ipv4() if g.r.random() < 0.7 else g.ipv6(),
        "AWS_ACCESS_KEY": g.aws_id,
        "AWS_SECRET_KEY": g.aws_secret,
        "GITHUB_TOKEN": g.github,
        "GITLAB_TOKEN": g.gitlab,
        "SLACK_TOKEN": g.slack,
        "STRIPE_KEY": g.stripe,
        "OPENAI_KEY": g.openai,
        "ANTHROPIC_KEY": g.anthropic,
        "GOOGLE_API_KEY": g.google,
        "NPM_TOKEN": g.npm,
        "SENDGRID_KEY": g.sendgrid,
        "JWT": g.jwt,
        "AUTH_HEADER": g.bearer,
        "URL_PASSWORD": g.url_password,
        "PRIVATE_KEY": g.pem,
        "SECRET_VALUE": g.password,
    }[type_]()


def negatives(g: Gen) -> Iterator[tuple[list[Part], str]]:
    """Samples with no entity, full of what looks like one."""
    for _ in range(10):
        yield (
            [
                f"{ts(g)} INFO deploy commit={g.sha1()} image=app@sha256:{g.sha256()} "
                f"req={g.uuid()} took {g.r.randint(1, 900)}ms\n{ts(g)} DEBUG cache key {g.sha256()[:40]} "
                f"ts={g.epoch_ms()} order={g.order()}\n"
            ],
            "log",
        )
        yield (
            [
                f"{ts(g)} WARN card declined: number {g.bad_card()} failed the check (masked ****{g.s(4, string.digits)})\n"
                f"{ts(g)} INFO retry payment {g.order()} amount ${g.r.randint(1, 9999)}.{g.r.randint(10, 99)}\n"
            ],
            "log",
        )
        yield (
            jdump(
                {
                    "id": g.uuid(),
                    "sha": g.sha1(),
                    "digest": "sha256:" + g.sha256(),
                    "integrity": g.sri(),
                    "created_ms": int(g.epoch_ms()),
                    "version": g.version(),
                    "mac": g.mac(),
                    "icon": "https://cdn.acme.io/logo@2x.png",
                    "dependencies": {"lodash": "4.17.21", "react": "^18.2.0"},
                    "api_key": g.pick(
                        ["<YOUR_API_KEY>", "${API_KEY}", "ghp_xxxxxxxxxxxxxxxx", "REDACTED", "****"]
                    ),
                    "contact": g.pick(["jane@example.com", "ops@example.org", "dev@test.invalid"]),
                    "order_id": g.order(),
                },
                indent=g.pick([None, 2]),
            ),
            "json",
        )
        yield (
            [
                "# .env.example\nAWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\n"
                "AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
                "GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\nOPENAI_API_KEY=<YOUR_API_KEY>\n"
                "STRIPE_SECRET=${STRIPE_SECRET}\nPASSWORD=changeme\nDB_HOST=127.0.0.1\n"
                f"SMTP_HOST=192.0.2.{g.r.randint(1, 254)}\nADMIN=admin@example.com\n"
            ],
            "env",
        )
        yield (
            [f"{g.pubkey()}\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI{g.s(43, B64)} deploy@ci\n"],
            "pem",
        )
        yield (
            [
                f'<img src="{g.b64img()}" alt="logo"> <script src="https://cdn.js/x.js" integrity="{g.sri()}"></script>\n'
            ],
            "html",
        )
        yield (
            [
                f"Install with `pip install requests=={g.version()}` or `npm i lodash@4.17.21`. "
                f"The server listens on 127.0.0.1 and ::1; docs use 198.51.100.{g.r.randint(1, 254)} and 2001:db8::{g.r.randint(1, 99)}. "
                f"Password: must be at least 12 characters. Set token: the value from the dashboard. "
                f"Version 1.2.3.4 ships std::vector fixes; see issue #{g.r.randint(100, 9999)}.\n"
            ],
            "prose",
        )
        yield (
            [
                f"iban {g.bad_iban()} rejected, ssn {g.bad_ssn()} invalid, order {g.r.randint(10**9, 10**10)} "
                f"shipped, invoice #{g.r.randint(10**9, 10**10)}, price ${g.r.randint(100, 999)}.{g.r.randint(100, 999)}.{g.r.randint(1000, 9999)}\n"
            ],
            "log",
        )
        yield (
            [
                f"def test_parse():\n    assert parse('{g.r.randint(0, 9)}.{g.r.randint(0, 30)}.{g.r.randint(0, 30)}') == ({g.r.randint(0, 9)}, 2)\n"
                f"    uid = '{g.uuid()}'\n    mac = '{g.mac()}'\n    when = {g.epoch_ms()}\n"
                f"    ratio = '1::2'\n    secret = os.environ['SECRET']  # never hardcode\n"
            ],
            "code",
        )
        yield (
            [
                f"id,created_ms,sha,status\n{g.r.randint(1, 99)},{g.epoch_ms()},{g.sha1()},ok\n"
                f"{g.r.randint(1, 99)},{g.epoch_ms()},{g.sha1()},ok\n{g.r.randint(1, 99)},{g.epoch_ms()},{g.bad_card()},void\n"
            ],
            "csv",
        )


def wild(g: Gen) -> Iterator[tuple[list[Part], str]]:
    """Positives in the shapes of real text: case, brackets, links, ports, cookies, exports."""
    e = g.email()
    yield (
        ["Reply to <", Ent(e.upper() if g.r.random() < 0.5 else e.title(), "EMAIL"), "> please.\n"],
        "email",
    )
    yield ["See [contact](mailto:", Ent(g.email(), "EMAIL"), ") or the wiki.\n"], "markdown"
    num = phonenumbers.parse(g.phone(), "US")
    e164 = phonenumbers.format_number(num, PhoneNumberFormat.E164)
    yield ['<a href="tel:', Ent(e164, "PHONE"), '">call us</a>\n'], "html"
    us = g.pick(["(415) 555-2671", "(212) 555-0143", "(646) 555-3890"])
    yield ["Phone: ", Ent("+1 " + us + " ext. " + str(g.r.randint(1, 999)), "PHONE"), "\n"], "email"
    yield (
        [
            f"{ts(g)} WARN connection from ",
            Ent(g.ipv4(), "IP"),
            f":{g.r.randint(1024, 65535)} reset\n",
        ],
        "log",
    )
    yield ["Set-Cookie: session=", Ent(g.jwt(), "JWT"), "; Path=/; HttpOnly\n"], "http"
    yield ['export OPENAI_API_KEY="', Ent(g.openai(), "OPENAI_KEY"), '"\n'], "shell"
    yield (
        [
            "git remote set-url origin https://x-access-token:",
            Ent(g.github(), "GITHUB_TOKEN"),
            "@github.com/org/repo.git\n",
        ],
        "shell",
    )
    yield (
        [
            "AMQP_URL=amqp://guest:",
            Ent(g.url_password(), "URL_PASSWORD"),
            "@rabbit.internal:5672/\n",
        ],
        "env",
    )
    yield (
        ['oauth:\n  client_id: web-app\n  client_secret: "', Ent(g.s(28), "SECRET_VALUE"), '"\n'],
        "yaml",
    )
    card = g.card().replace(" ", "").replace("-", "")
    yield jdump({"payment": {"card": Ent(card, "CARD"), "exp": "12/29", "cvc": "***"}}), "json"
    yield ["Please wire the refund to ", Ent(g.iban(grouped=True), "IBAN"), ". Thanks!\n"], "email"
    yield (
        [
            "applicant ssn: ",
            Ent(g.ssn(), "SSN"),
            f", dob {g.r.randint(1950, 2000)}-0{g.r.randint(1, 9)}-1{g.r.randint(0, 9)}\n",
        ],
        "log",
    )
    yield (
        [
            'curl -H "Authorization: Basic ',
            Ent(base64.b64encode(f"svc:{g.password()}".encode()).decode(), "AUTH_HEADER"),
            '" https://ci.internal/api\n',
        ],
        "curl",
    )
    yield (
        [
            "  File \"deploy.py\", line 12\n    s3 = boto3.client('s3', aws_access_key_id='",
            Ent(g.aws_id(), "AWS_ACCESS_KEY"),
            "')\n",
        ],
        "stacktrace",
    )


def wild_negatives(g: Gen) -> Iterator[tuple[list[Part], str]]:
    """Hard negatives in the same real shapes: templates, references, docs, versions."""
    yield (
        [
            "git remote set-url origin https://x-access-token:${GITHUB_TOKEN}@github.com/org/repo.git\n"
        ],
        "shell",
    )
    yield ['curl -H "Authorization: Bearer $TOKEN" https://api.internal/v1/me\n'], "curl"
    yield ["See [support](mailto:help@example.com) or call +1 (555) 010-0199.\n"], "markdown"
    yield (
        [
            f"pip install 'urllib3=={g.version()}.{g.r.randint(1, 9)}' && npm i @scope/pkg@{g.version()}\n"
        ],
        "shell",
    )
    yield (
        [
            "password = os.environ.get('DB_PASSWORD')\ntoken = request.headers['X-Token']\nsecret: ${{ secrets.DEPLOY_KEY }}\n"
        ],
        "code",
    )
    yield (
        [
            f"{ts(g)} INFO build {g.r.randint(10**9, 10**10)} sha {g.sha1()} took {g.r.randint(1, 900)}.{g.r.randint(10, 99)}s on 127.0.0.1\n"
        ],
        "log",
    )
    yield (
        [
            f"phone: +1-555-0100 (fictional), card: 4111 1111 1111 111{g.r.randint(2, 9)} (invalid), ssn: 000-12-3456\n"
        ],
        "yaml",
    )
    yield (
        [
            f'{{"message": "The password must be at least {g.r.randint(8, 16)} characters", "field": "password"}}'
        ],
        "json",
    )


def build() -> list[Sample]:
    from lockgate.guardrails.detectors import TYPES

    g = Gen(SEED)
    samples: list[Sample] = []

    def add(parts: list[Part], fmt: str, kind: str) -> None:
        text, spans = assemble(parts)
        samples.append({"text": text, "spans": spans, "format": fmt, "kind": kind})

    for type_ in TYPES:
        templates = KEYED_TEMPLATES if type_ in KEYED else TEMPLATES
        for i in range(14):
            template = templates[i % len(templates)]
            value = value_of(g, type_)
            parts, fmt = template(g, Ent(value, type_))
            add(parts, fmt, "positive")
    # Entities written the way people write them, not as the templates above do.
    for _ in range(3):
        for parts, fmt in wild(g):
            add(parts, fmt, "positive")
    for _ in range(3):
        for parts, fmt in wild_negatives(g):
            add(parts, fmt, "negative")
    # Several entities in one sample, as in a real tool result.
    for _ in range(40):
        types = g.r.sample([t for t in TYPES if t not in KEYED and t != "PRIVATE_KEY"], 3)
        obj = {
            "id": g.uuid(),
            "created": int(g.epoch_ms()),
            "customer": {
                "email": Ent(g.email(), "EMAIL") if "EMAIL" in types else "n/a",
                "notes": Parts(
                    *[p for t in types if t != "EMAIL" for p in (Ent(value_of(g, t), t), "; ")]
                ),
            },
            "sha": g.sha1(),
        }
        add(jdump(obj, indent=2), "json", "positive")
    for parts, fmt in negatives(g):
        add(parts, fmt, "negative")
    for _ in range(40):  # hard negatives in every template, as plain values
        value = g.pick(
            [
                g.bad_card(),
                g.bad_iban(),
                g.bad_ssn(),
                g.uuid(),
                g.sha1(),
                g.epoch_ms(),
                g.mac(),
                "AKIAIOSFODNN7EXAMPLE",
                "<YOUR_API_KEY>",
                "ghp_xxxx",
                "${TOKEN}",
                "****4242",
                "logo@2x.png",
                "lodash@4.17.21",
                "192.0.2.44",
                "::1",
            ]
        )
        template = g.pick([t_log, t_stack, t_csv])
        parts, fmt = template(g, Ent(value, "NONE"))
        add([p.value if isinstance(p, Ent) else p for p in parts], fmt, "negative")
    # Bare 14-digit runs in the Diners Club range 300-305 with a valid Luhn digit, where no
    # card word is near: record ids, not cards (their own generator, so that the samples
    # above stay as they were).
    h = Gen(SEED + 1)
    for i in range(24):
        add(list(diners_shaped_ids(h, i)), ("log", "json", "csv", "stacktrace")[i % 4], "negative")
    return samples


def diners_shaped_id(g: Gen) -> str:
    body = str(g.r.randint(300, 305)) + g.s(10, string.digits)
    return body + str(luhn_digit(body))


def diners_shaped_ids(g: Gen, i: int) -> Iterator[str]:
    """A hard negative: a Luhn-valid 14-digit id starting 300-305 where an id belongs."""
    n = diners_shaped_id(g)
    if i % 4 == 0:
        yield f"{ts(g)} INFO worker {g.pick(['job', 'record', 'batch', 'shipment'])} {n} done in {g.r.randint(1, 900)}ms\n"
    elif i % 4 == 1:
        yield json.dumps(
            {"id": n, "parent": diners_shaped_id(g), "updated": ts(g), "ok": True},
            indent=g.pick([None, 2]),
        )
    elif i % 4 == 2:
        yield f"id,created,name\n{n},{ts(g)},{g.pick(Gen.FIRST)}\n{diners_shaped_id(g)},{ts(g)},{g.pick(Gen.FIRST)}\n"
    else:
        yield f"Traceback (most recent call last):\nKeyError: 'row {n} not found' (trace {g.uuid()})\n"


def mixed_text(size: int, seed: int = 7) -> str:
    """About `size` characters of logs, JSON API responses, code and prose with about one
    entity per KB: the bench's throughput load."""
    return "".join(mixed_chunks(size, seed))[:size]


def mixed_values(size: int, seed: int = 7) -> list[str]:
    """The same load as the string values a JSON walker hands the engine: each string leaf
    of the JSON responses, each other chunk (a tool result's text) whole."""
    out: list[str] = []
    for chunk in mixed_chunks(size, seed):
        try:
            obj = json.loads(chunk)
        except ValueError:
            out.append(chunk)
            continue
        stack = [obj]
        while stack:
            o = stack.pop()
            if isinstance(o, str):
                out.append(o)
            elif isinstance(o, dict):
                stack += o.values()
            elif isinstance(o, list):
                stack += o
    return out


def mixed_chunks(size: int, seed: int = 7) -> list[str]:
    g = Gen(seed)
    out: list[str] = []
    n = 0
    words = [
        "the",
        "gateway",
        "forwards",
        "each",
        "request",
        "to",
        "the",
        "upstream",
        "server",
        "and",
        "returns",
        "its",
        "result",
        "unless",
        "a",
        "rule",
        "in",
        "the",
        "profile",
        "says",
        "otherwise;",
        "tools",
        "are",
        "listed",
        "once",
        "per",
        "session",
        "and",
        "cached,",
        "so",
        "a",
        "client",
        "that",
        "reconnects",
        "sees",
        "the",
        "same",
        "list",
    ]
    while n < size:
        k = g.r.randrange(4)
        if k == 0:
            chunk = "".join(
                f"{ts(g)} INFO api {noise(g)} path=/v1/items/{g.r.randint(1, 9999)} status=200 in {g.r.randint(1, 500)}ms\n"
                for _ in range(4)
            )
        elif k == 1:
            chunk = json.dumps(
                {
                    "id": g.uuid(),
                    "name": g.pick(words),
                    "count": g.r.randint(1, 999),
                    "tags": g.r.sample(words, 3),
                    "updated": ts(g),
                    "ok": True,
                },
                indent=2,
            )
        elif k == 2:
            chunk = f"def handle_{g.pick(words)}(request, limit={g.r.randint(1, 100)}):\n    items = fetch(request.query, limit)\n    return {{'items': items, 'next': cursor(items)}}\n"
        else:
            chunk = " ".join(g.pick(words) for _ in range(60)).capitalize() + ".\n"
        out.append(chunk)
        n += len(chunk)
        if g.r.random() < len(chunk) / 1024:  # about one entity per KB
            type_ = g.pick(
                [t for t in ("EMAIL", "PHONE", "IP", "CARD", "GITHUB_TOKEN", "JWT", "IBAN")]
            )
            out.append(f"contact {value_of(g, type_)} ok\n")
    return out


def main() -> None:
    samples = build()
    with open(HERE / "samples.jsonl", "w", encoding="utf-8") as f:
        for s in samples:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    kinds = {k: sum(s["kind"] == k for s in samples) for k in ("positive", "negative")}
    print(f"{len(samples)} samples: {kinds}")


if __name__ == "__main__":
    main()
