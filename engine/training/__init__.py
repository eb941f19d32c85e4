"""What every training kind shares: the training arguments built from `train:` and `resources:`, the
strategy for several processes, the training call with resume and cancel, rank-0 writes of outputs,
model cards, the events callback and trackers. Each recipe in engine/jobs/ wires its own data and
model to these; none writes them again.

Light at package level: `engine.training.strategy` is pure data that the studio's review page shows.
"""
