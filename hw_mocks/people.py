"""Synthetic people for the simulated table: fake names, valid ID numbers, signed codes.

Every ID number is check-digit-correct (GB 11643, ISO 7064 MOD 11-2) with a real
birth date and a plausible county-level region code, so the station's checks pass
exactly as they would for real cards. Nobody here is a real person: names are drawn
from common characters and the sequence digits are random.

``Authority`` is a throwaway issuing authority (fresh Ed25519 key pairs every run)
that signs personal sampling codes of any colour and operator certificates with
``firmware_app.qr``; its public keys go into the simulated station file.
"""

from __future__ import annotations

import base64
import datetime as dt
import random
from dataclasses import dataclass

from firmware_app.idnumber import check_char
from firmware_app.model import IdCard, mask_id, mask_name

# County-level region codes (GB/T 2260) with the address prefix a card would carry.
REGIONS = {
    "441900": "广东省东莞市",
    "440106": "广东省广州市天河区",
    "440304": "广东省深圳市福田区",
    "110105": "北京市朝阳区",
    "310115": "上海市浦东新区",
    "420106": "湖北省武汉市武昌区",
    "510107": "四川省成都市武侯区",
    "330106": "浙江省杭州市西湖区",
    "320102": "江苏省南京市玄武区",
    "370202": "山东省青岛市市南区",
    "610113": "陕西省西安市雁塔区",
    "500103": "重庆市渝中区",
    "430104": "湖南省长沙市岳麓区",
    "350203": "福建省厦门市思明区",
    "410105": "河南省郑州市金水区",
    "210102": "辽宁省沈阳市和平区",
    "450103": "广西壮族自治区南宁市青秀区",
    "360102": "江西省南昌市东湖区",
}
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘蒋蔡余杜叶程苏魏吕丁任沈姚卢钟"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华玉兰萍红建文辉力宇浩然子涵欣怡梓轩雨晨佳琪思远嘉俊晓东海燕志强春梅"
STREETS = ["人民路", "东城大道", "解放路", "中山路", "建设路", "和平街", "新华路", "学院路", "光明街", "滨江路"]


@dataclass(frozen=True)
class Person:
    name: str
    gender: str  # "1" male, "2" female
    birth: str  # YYYYMMDD
    id_number: str
    address: str
    phone: str
    colour: str = "green"  # green | yellow | red
    key_person: bool = False
    household: int = 0  # people sharing a number live together (一户一管)
    via: str = "card"  # how they show up: card | scanner | camera

    def __repr__(self) -> str:
        return f"Person({mask_name(self.name)}, {mask_id(self.id_number)}, {self.colour}, via={self.via})"

    @property
    def masked(self) -> str:
        return f"{mask_name(self.name)} {mask_id(self.id_number)}"

    def id_card(self) -> IdCard:
        issued = dt.date(int(self.birth[:4]) + 18, 3, 1) if int(self.birth[:4]) + 18 < 2024 else dt.date(2024, 3, 1)
        valid_to = "长期" if int(self.birth[:4]) < 1970 else f"{issued.year + 20}{issued:%m%d}"
        return IdCard(name=self.name, gender=self.gender, nation="01", birth=self.birth, address=self.address,
                      id_number=self.id_number, authority=self.address[:6] + "公安局",
                      valid_from=f"{issued:%Y%m%d}", valid_to=valid_to, photo=bytes(1024))


class People:
    """A deterministic stream of distinct synthetic people (same seed, same people)."""

    def __init__(self, seed: int = 2022, today: dt.date | None = None) -> None:
        self.rng = random.Random(seed)
        self.today = today or dt.date.today()
        self._used: set[str] = set()
        self._household = 0

    def id_number(self, birth: dt.date, gender: str) -> str:
        while True:
            region = self.rng.choice(list(REGIONS))
            seq = self.rng.randrange(0, 500) * 2 + (1 if gender == "1" else 0)  # odd male, even female
            first17 = f"{region}{birth:%Y%m%d}{seq:03d}"
            number = first17 + check_char(first17)
            if number not in self._used:
                self._used.add(number)
                return number

    def person(self, *, colour: str = "green", key_person: bool = False, via: str = "card",
               household: int = 0, min_age: int = 3, max_age: int = 85) -> Person:
        rng = self.rng
        gender = rng.choice("12")
        age_days = rng.randrange(min_age * 365 + 1, max_age * 365)
        birth = self.today - dt.timedelta(days=age_days)
        number = self.id_number(birth, gender)
        name = rng.choice(SURNAMES) + "".join(rng.choice(GIVEN) for _ in range(rng.choice((1, 2, 2))))
        region = REGIONS[number[:6]]
        address = f"{region}{rng.choice(STREETS)}{rng.randrange(1, 300)}号"
        phone = "1" + rng.choice("3589") + "".join(rng.choice("0123456789") for _ in range(9))
        return Person(name, gender, f"{birth:%Y%m%d}", number, address, phone, colour, key_person, household, via)

    def household(self, size: int, via: str = "card") -> list[Person]:
        self._household += 1
        return [self.person(household=self._household, via=via) for _ in range(size)]


class Authority:
    """A throwaway issuing authority: fresh key pairs, signs sampling codes and operator certs."""

    def __init__(self) -> None:
        from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

        self.personal_key = Ed25519PrivateKey.generate()
        self.operator_key = Ed25519PrivateKey.generate()

    @staticmethod
    def _b64(private_key) -> str:
        from cryptography.hazmat.primitives import serialization

        raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return base64.b64encode(raw).decode()

    @property
    def personal_public_b64(self) -> str:
        return self._b64(self.personal_key)

    @property
    def operator_public_b64(self) -> str:
        return self._b64(self.operator_key)

    def sampling_code(self, person: Person, *, issued_at: float, valid_h: float = 24) -> str:
        from firmware_app import qr

        return qr.issue_personal(self.personal_key, name=person.name, id_number=person.id_number,
                                 phone=person.phone, colour=person.colour, key_person=person.key_person,
                                 issued_at=int(issued_at), expires_at=int(issued_at + valid_h * 3600))

    def operator_cert(self, cert_id: str, name: str, *, issued_at: float, valid_days: float = 180) -> str:
        from firmware_app import qr

        return qr.issue_operator(self.operator_key, cert_id=cert_id, name=name, issued_at=int(issued_at),
                                 expires_at=int(issued_at + valid_days * 86400))
