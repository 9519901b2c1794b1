"""prodigy-sluice: Sluice connectors inside Prodigy.

- the `sluice` loader (`--loader sluice`), registered through `prodigy_loaders`;
- the `sluice.publish` and `sluice.export` recipes, registered through `prodigy_recipes`;
- `publish(dataset, url)`, `live_export(components, url)` and `strip_inline_media` in Python.
"""

from ._connectors import SluiceError
from ._version import CLI_VERSION, __version__
from .export import LiveExport, chain_before_db, live_export
from .loader import load
from .media import strip_inline_media
from .publish import publish

__all__ = [
    "CLI_VERSION",
    "LiveExport",
    "SluiceError",
    "__version__",
    "chain_before_db",
    "live_export",
    "load",
    "publish",
    "strip_inline_media",
]
