"""Text on its way out: what every feed (Open311 XML and JSON, the REST API) may carry.

XML 1.0 cannot carry C0 controls other than tab, newline and carriage return, lone
surrogates, U+FFFE or U+FFFF: one such character in a stored row would make every
Open311 XML feed that lists it unparseable. Intake refuses them (reports.validation);
rows stored before that, or by another writer, are cleaned here at serialisation.
"""
from __future__ import annotations

import re

NOT_XML_CHARS = "\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff"  # a character class's body
NOT_XML = re.compile(f"[{NOT_XML_CHARS}]")


def printable(value):
    """`value` with every string in it (inside dicts and lists too) stripped of NOT_XML characters."""
    if isinstance(value, str):
        return NOT_XML.sub("", value)
    if isinstance(value, dict):
        return {k: printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [printable(v) for v in value]
    return value
