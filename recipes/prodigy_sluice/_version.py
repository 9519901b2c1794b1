"""Versions, in one place a release updates (see RELEASING in the repository README).

`CLI_VERSION` is the version of the @sluice npm packages this release of prodigy-sluice was
released with: the `npx` fallback runs exactly that version. A test fails when it differs from
the packages' own version, so a release that forgets to bump it fails CI.
"""

__version__ = "0.1.0"
CLI_VERSION = "0.1.0"
