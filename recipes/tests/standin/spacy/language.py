import re
from typing import Dict, List


class Language:
    """A pipeline that only tokenizes, on whitespace."""

    def __init__(self, lang: str):
        self.lang = lang

    def tokens(self, text: str) -> List[Dict]:
        found = list(re.finditer(r"\S+", text))
        return [
            {"text": m.group(), "start": m.start(), "end": m.end(), "id": i,
             "ws": i + 1 < len(found) and found[i + 1].start() > m.end()}
            for i, m in enumerate(found)
        ]
