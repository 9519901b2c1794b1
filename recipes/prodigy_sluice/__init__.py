"""prodigy-sluice: Sluice connectors inside Prodigy.

- the `sluice` loader (`--loader sluice`), registered through `prodigy_loaders`;
- the `sluice.export` recipe, registered through `prodigy_recipes`;
- `live_export(components, url)` and `strip_inline_media` for your own recipes.
"""

from ._connectors import SluiceError
from .export import LiveExport, chain_before_db, live_export
from .loader import load
from .media import strip_inline_media

__all__ = ["LiveExport", "SluiceError", "chain_before_db", "live_export", "load", "strip_inline_media"]
__version__ = "0.1.0"
