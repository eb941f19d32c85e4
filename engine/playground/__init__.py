"""The playground's Qt-free core: prompt templates and presets, answer metrics, and the data and
plan of the evaluate job (docs/playground.md). The studio's playground page and `kind: evaluate`
share it."""
