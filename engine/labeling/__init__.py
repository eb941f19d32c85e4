"""Preference labeling: the label store, agreement, import/export and the web labeling page.

Light on purpose (no torch): the studio imports the store and the formats, the engine serves them.
"""
