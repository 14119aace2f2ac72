"""The base of every error netdissect reports as one clear line (bad config, data, model or store)."""


class NetdissectError(ValueError):
    """An expected failure; the message names the key, file, layer or image at fault."""
