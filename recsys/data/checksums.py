"""Known sha256 checksums of the files inside MovieLens releases.

Only digests live here, never MovieLens data. A release listed in
:data:`KNOWN_SHA256` is verified against these values after extraction; a
release that is not listed is verified trust-on-first-use instead (see
:mod:`recsys.data.fetch`).

Keys of the inner dicts are paths relative to the release's extracted folder
(``u.data``, not ``ml-100k/u.data``), with ``/`` separators.
"""

from __future__ import annotations

from collections.abc import Mapping

# ml-100k: from shared/data/movielens/ml-100k.sha256 (the verified copy in ../shared).
KNOWN_SHA256: Mapping[str, Mapping[str, str]] = {
    "ml-100k": {
        "README": "4883b8cf340ed0059971b33f56ad3adc88a40792108ebca3d24aafc4c82e8b52",
        "allbut.pl": "bfc6a75cbd65c74bb38a0b580dbe866af252733dfa9a65a2c4b93258774ee8a3",
        "mku.sh": "7929735c375e89a04340e34de621bf2ea643cd04b0bcda2c6f458e4be961ae71",
        "u.data": "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490",
        "u.genre": "9757e0d3e6b298159a80dd48eaf938114690e911e39af97a76949ef1663610bb",
        "u.info": "5b0a40b2e47a729ee6203063f6dcf8790c2e63f5a18663e6ee318a72c5f3c27b",
        "u.item": "553841ebc7de3a0fd0d6b62a204ea30c1e651aacfb2814c7a6584ac52f2c5701",
        "u.occupation": "cd5fbec9afe345d993a62fc7817df1a4a9079c4feb267b3118763b8fd942137d",
        "u.user": "f120e114da2e8cf314fd28f99417c94ae9ddf1cb6db8ce0e4b5995d40e90e62c",
        "u1.base": "ce253ec86c448b44fb3ba9a30d12dcfc2e9210cbde71efada3730c22e9ac212a",
        "u1.test": "18c6014a4b2c7324f250a63f8904a7b16b2b19f911129e346141507b0cbac950",
        "u2.base": "6c06f0b5df4b256da1a994f3ac66edc8da4d3f09bc9282df6b14d893366d703e",
        "u2.test": "4de658d1e04ed9104629509a2e2528fce833ac8e048280183f1df167632038c3",
        "u3.base": "afdc155c291c6edc41c0407e39d7462eb98d341e064f0b0a12175b80b3c4af5d",
        "u3.test": "0f548b51c78327de4c156461d3e430b7e5579fe2b5681586a59416e48fd35f6d",
        "u4.base": "219f0f4d40dfe9c5141d425f53fa91ee23ed275f14e280bbf1b50117afb064ca",
        "u4.test": "7c02ad0a1e7ab1083c8b9d4b627203a051dd7b5eab46d99fa44de33470de8db9",
        "u5.base": "a9574e59ce961eec2121627760b6e9b0974ce1637b3fe69ac32cb14a4bfab485",
        "u5.test": "351cc52e0d15b6c721466276fc24671d40936899e3d01fadeaf312915b8c5634",
        "ua.base": "67b5bcdb380c29f85d56a012ecd88612ae020f30a6730d117a334ee8203b91f2",
        "ua.test": "d0497e202417720f57a184ec8c66be2d1afa4ff41bb53787c57b28d6bf79bc42",
        "ub.base": "237254d253b6ad7de84f919d041055428646254f34ed8f562703c899430cd881",
        "ub.test": "d54a72d05730d5892062734b2bec73e976f9b713d18c828a18b968d6cce442da",
    },
}


def known_checksums(name: str) -> dict[str, str] | None:
    """The embedded sha256 digests of one release's files.

    Args:
        name: Release name, e.g. ``ml-100k``.

    Returns:
        ``{relative path: sha256 hex}`` (one entry per file of the release), or
        ``None`` when we have no embedded checksums for ``name``.
    """
    known = KNOWN_SHA256.get(name)
    return dict(known) if known is not None else None
