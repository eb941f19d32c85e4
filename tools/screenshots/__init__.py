"""The studio's pages rendered offscreen to PNGs (docs/screenshots/), from recorded real runs.

`python -m tools.screenshots DIR` (`make screenshots`) renders every page in both themes; the modules
beside this one build the demo workspace each page shows. Not part of the installed studio: the
bundle carries it only so that its test can render every page (packaging/studio_entry.py).
"""
